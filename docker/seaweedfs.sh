#!/bin/sh
# The S3 service: SeaweedFS `weed mini` (master, volume, filer and S3 in one process) with the
# same identity file `tally services up` writes (plugins/tally/services/s3.py). The keys come
# from the environment (.env) and the file lives in /tmp, never in the repository or a volume.
set -eu
: "${S3_ACCESS_KEY:?set S3_ACCESS_KEY in .env}"
: "${S3_SECRET_KEY:?set S3_SECRET_KEY in .env}"

umask 077
config=/tmp/s3.json
cat > "$config" <<JSON
{"identities": [{"name": "tally",
  "credentials": [{"accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON

# Only the S3 port is used by the other services; the other components talk over loopback.
exec weed mini -dir=/data -ip=127.0.0.1 -ip.bind=0.0.0.0 -s3.port=8333 \
    -webdav=false -admin.ui=false -s3.config="$config"
