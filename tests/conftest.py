pytest_plugins = [
    "tests.fixtures.aws",
    "tests.fixtures.browser",
    "tests.fixtures.images",
    "tests.fixtures.logs",
    "tests.fixtures.model",
    "tests.fixtures.search",
]
