# A regular package (not a namespace one), so that these stubs, first on sys.path, win
# over an installed Python client, which is also called `vaultbridge`.
