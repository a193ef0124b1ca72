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
    # the C kernels are built from their sources on the user's machine (film2vec/c_kernels.py)
    package_data={
        "film2vec": ["log4j2.properties"],
        "film2vec.pairs": ["pair_kernel.c"],
        "film2vec.conf": ["*.yaml"],
        "film2vec.train": ["native_step.c"],
    },
    include_package_data=True,
    # Spark comes with the platform on a cluster (Databricks, EMR, Dataproc): PySpark and delta-spark are the
    # `spark` extra, so installing the wheel there never pulls a second Spark beside the runtime's.
    # Every bound admits what the job's runtime, Databricks Runtime 18 LTS ML, ships, so installing the wheel
    # there installs film2vec alone and changes none of the runtime's packages (tests/test_runtime.py).
    install_requires=[
        "deltalake>=1.0,<2",  # the trainer and `film2vec similar` read Delta without Spark through its 1.x API
        # models from code, LoggedModel metrics and `name=` of log_model are MLflow 3 API. The ML runtimes ship
        # MLflow as the mlflow-skinny distribution and no `mlflow`: asking for `mlflow` would install it there,
        # and `mlflow` pins mlflow-skinny to its own release, so it would replace the runtime's MLflow.
        "mlflow-skinny>=3.0,<4",
        # the SQLite store film2vec keeps off Databricks (tracking.use_store), which `mlflow` would bring
        "sqlalchemy>=1.4,<3",
        "alembic!=1.10.0,<2",
        "torch>=2.0,<3",  # torch.compile fuses the tensor-code training step (2.0 introduced it)
        "numpy>=1.22,<3",  # array basics only; 1.22 is the floor of the pandas below
        "pandas>=2.2,<4",  # PySpark 4's floor for its pandas and Arrow conversions (toArrow, mapInArrow)
        "pyarrow>=21,<26",  # delta-rs's pyarrow reader (deltalake's `pyarrow` extra) asks for 21
        "scipy>=1.10,<2",  # sparse CSR products of the pair counts and the label means
        "pyyaml>=6",
        "tqdm>=4.66",
        "matplotlib>=3.7,<4",
        "scikit-learn>=1.3,<2",  # k-means, t-SNE and the adjusted Rand index of the uses (film2vec/apps)
    ],
    extras_require={
        # a machine without Spark: `pip install "film2vec[spark]"` (the checked pair of versions), with the
        # whole of MLflow a platform would otherwise provide (`mlflow ui`, `mlflow models serve`)
        "spark": ["pyspark==4.1.1", "delta-spark==4.3.1", "mlflow>=3.0,<4"],
        # the Spark Connect client (pyspark's own "connect" extra): Databricks serverless, tests/test_connect.py
        "connect": ["grpcio>=1.76", "grpcio-status>=1.76", "googleapis-common-protos>=1.71", "zstandard>=0.25"],
        # gensim is the reference the trainer benchmark compares against, never used by film2vec itself.
        "bench": ["gensim>=4.3"],
        # approximate neighbours of a large catalogue (film2vec.serving.ann): the neighbours table and the served model
        "ann": ["faiss-cpu>=1.8"],
        # everything the suite exercises, so no test is skipped for a missing package
        "test": [
            "film2vec[spark,connect,ann]",
            "pytest>=8",
            "hypothesis>=6.100",
            "ruff>=0.15",
        ],
    },
    # a Databricks wheel task calls the function and ignores its return value: entry_point raises the exit code
    entry_points={"console_scripts": ["film2vec=film2vec.cli:entry_point"]},
)
