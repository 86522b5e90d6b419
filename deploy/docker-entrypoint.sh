#!/bin/sh
# Entry point of the MediaNest image: settings may come from files, as Docker secrets do.
# For every MEDIANEST_*_FILE or PG*_FILE variable, the file's content (without the trailing
# newline) becomes the variable without the _FILE suffix, e.g. MEDIANEST_SECRET_KEY_FILE sets
# MEDIANEST_SECRET_KEY and PGPASSWORD_FILE sets PGPASSWORD (the database password, which then
# stays out of MEDIANEST_DATABASE_URL). Then the command runs in place of this script.
set -eu

for name in $(env | sed -n 's/^\(MEDIANEST_[A-Z0-9_]*_FILE\|PG[A-Z0-9_]*_FILE\)=.*/\1/p'); do
  target=${name%_FILE}
  file=$(printenv "$name")
  if [ -n "$(printenv "$target" || true)" ]; then
    echo "medianest: both $target and $name are set; keep one of them" >&2
    exit 2
  fi
  if [ ! -r "$file" ]; then
    echo "medianest: $name names $file, which does not exist or is not readable by uid $(id -u)" >&2
    exit 2
  fi
  value=$(cat "$file")
  case "$value" in
    "")
      echo "medianest: $file (from $name) is empty" >&2
      exit 2 ;;
    *CHANGE-ME*)
      echo "medianest: $file (from $name) still holds the example value; see deploy/secrets/README.md" >&2
      exit 2 ;;
  esac
  export "$target=$value"
  unset "$name"
done

exec "$@"
