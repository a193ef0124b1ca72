from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="film2vec",
    version="0.1.0",
    description="Vectors of catalogue items from viewing behaviour, on Apache Spark",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=[*find_packages(include=["film2vec", "film2vec.*"]), "film2vec.conf"],
    package_dir={"film2vec.conf": "conf"},  # the profiles travel in the wheel, for spark-submit and Databricks
    # the C kernels are built from their sources on the user's machine (film2vec/native.py)
    package_data={"film2vec": ["pair_kernel.c"], "film2vec.conf": ["*.yaml"], "film2vec.train": ["native_step.c"]},
    include_package_data=True,
    install_requires=[
        "pyspark==4.1.1",
        "delta-spark==4.3.1",
        "deltalake>=1.6,<2",
        "mlflow>=3.17,<4",
        "torch>=2.15,<3",
        "numpy>=2.2,<3",
        "pandas>=2.2,<4",
        "pyarrow>=18,<26",
        "scipy>=1.15,<2",
        "pyyaml>=6",
        "tqdm>=4.66",
        "matplotlib>=3.9,<4",
        "scikit-learn>=1.5,<2",  # k-means, t-SNE and the adjusted Rand index of the uses (film2vec/apps)
    ],
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6.100", "ruff>=0.15"],
        # the Spark Connect client (pyspark's own "connect" extra): Databricks serverless, tests/test_connect.py
        "connect": ["grpcio>=1.76", "grpcio-status>=1.76", "googleapis-common-protos>=1.71", "zstandard>=0.25"],
        # gensim is the reference the trainer benchmark compares against, never used by film2vec itself.
        "bench": ["gensim>=4.3"],
        "ann": ["faiss-cpu>=1.8"],  # the approximate index of `film2vec similar` on large catalogues
    },
    entry_points={"console_scripts": ["film2vec=film2vec.cli:main"]},
)
