#!/usr/bin/env bash
# `make run`: initialise the data dir if missing, load the two sample apps and
# their real data once, create a demo API token, print how to call the API and
# run the server in the foreground. Honours every FORMVAULT_* variable, so
# several instances can run side by side:
#   FORMVAULT_DATA_DIR=/tmp/b FORMVAULT_HTTPS_PORT=8444 FORMVAULT_HTTP_PORT=8081 \
#   FORMVAULT_OPERATOR_PORT=9444 make run
set -euo pipefail
bin=${1:-build/formvault}
here=$(cd "$(dirname "$0")/.." && pwd)
data=${FORMVAULT_DATA_DIR:-./formvault-data}
https_port=${FORMVAULT_HTTPS_PORT:-8443}
tenant=demo
marker="$data/.demo-loaded"
# The master key (KEK) stays outside the data directory (DESIGN.md "Keys").
export FORMVAULT_KEK_FILE=${FORMVAULT_KEK_FILE:-./formvault-kek.key}
if [ ! -e "$FORMVAULT_KEK_FILE" ]; then
    if [ -e "$data/node.key" ]; then
        echo "formvault: $data is encrypted under a KEK that is not at $FORMVAULT_KEK_FILE" >&2
        echo "formvault: set FORMVAULT_KEK_FILE, or remove $data and run 'make run' again" >&2
        exit 1
    fi
    "$bin" keys init --kek-file "$FORMVAULT_KEK_FILE" >/dev/null
fi

"$bin" init >/dev/null
if [ ! -e "$marker" ]; then
    if "$bin" tenant list | awk 'NR>1{print $2}' | grep -qx "$tenant"; then
        echo "formvault: tenant '$tenant' exists but the sample data was not loaded completely" >&2
        echo "formvault: remove $data (or set FORMVAULT_DATA_DIR) and run 'make run' again" >&2
        exit 1
    fi
    echo "loading the sample apps into tenant '$tenant' (first run only)..."
    "$bin" tenant create "$tenant" >/dev/null
    "$bin" app import "$here/examples/clinic/app.json" --tenant "$tenant"
    "$bin" app import "$here/examples/birdstrikes/app.json" --tenant "$tenant"
    "$bin" import "$here/examples/clinic/patients.csv" --tenant "$tenant" --app clinic --form Patient
    "$bin" import "$here/examples/clinic/visits.csv" --tenant "$tenant" --app clinic --form Visit
    "$bin" import "$here/examples/birdstrikes/birdstrikes.csv" --tenant "$tenant" --app birdstrikes --form Strike
    touch "$marker"
fi
token=$("$bin" token create --tenant "$tenant" --scopes all --expires 1d --label make-run)
base="https://localhost:$https_port/creator/v2.1"
cacert=${FORMVAULT_TLS_CERT:-$data/tls/cert.pem}
# a new patient number on every run, so the add example works each time
pnum="P9$(od -An -N3 -tu4 /dev/urandom | tr -d ' ' | cut -c1-5)"
cat <<EOT

formvault demo: tenant '$tenant' with apps 'clinic' and 'birdstrikes'
API token (valid 1 day, shown once): $token

Try (the certificate is self-signed: --cacert trusts it):
  curl --cacert $cacert -H "Authorization: Zoho-oauthtoken $token" \\
       "$base/meta/$tenant/clinic/forms"
  curl --cacert $cacert -H "Authorization: Zoho-oauthtoken $token" \\
       "$base/data/$tenant/birdstrikes/report/All_Strikes?criteria=Origin_State%3D%3D%22Texas%22&max_records=200"
  curl --cacert $cacert -H "Authorization: Zoho-oauthtoken $token" -H 'Content-Type: application/json' \\
       -d '{"data":[{"Patient_Number":"$pnum","First_Name":"Ada","Last_Name":"Lovelace","Email":"ada@example.com"}]}' \\
       "$base/data/$tenant/clinic/form/Patient"

Data is encrypted at rest under the KEK in $FORMVAULT_KEK_FILE. The CLI needs it too:
  export FORMVAULT_KEK_FILE=$FORMVAULT_KEK_FILE
  build/formvault keys status

EOT
exec "$bin" serve
