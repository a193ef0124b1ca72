"""Co-view pairs: the asset–asset counts the co-view walk reads."""
