#!/bin/sh
# The `--fixture` program for `vaultbridge plugin check` against this plugin:
#   fixture.sh reset      empties the password store (keeps its .gpg-id)
#   fixture.sh put NAME   stores standard input as entry NAME, byte for byte
# Only ever on a throwaway store: PASSWORD_STORE_DIR must be set.
set -eu
: "${PASSWORD_STORE_DIR:?set PASSWORD_STORE_DIR to a throwaway store}"
case "${1:-}" in
  reset) find "$PASSWORD_STORE_DIR" -mindepth 1 ! -name .gpg-id -delete ;;
  put) pass insert --multiline --force -- "$2" >/dev/null ;;
  *) echo "usage: $0 reset | put NAME" >&2; exit 2 ;;
esac
