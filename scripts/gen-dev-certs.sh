#!/usr/bin/env bash
# Generate a development PKI for opsagent with the openssl CLI.
#
# Usage: scripts/gen-dev-certs.sh [--force] [--ca-name NAME] [OUTDIR]
#   OUTDIR         where to write (default: <repo>/certs/dev, gitignored); relative to the cwd
#   --force        regenerate even if valid certificates are already there
#   --ca-name NAME common name of the CA (default "opsagent dev CA"); tests use it to make a
#                  second, untrusted CA in another directory
#
# Writes ca.crt ca.key server.crt server.key alice.crt alice.key ci-bot.crt ci-bot.key
# mallory.crt mallory.key (keys mode 0600). All keys are ECDSA P-256. The server certificate is
# valid for localhost, 127.0.0.1, ::1 and 127.0.0.2-127.0.0.40. "mallory" is a valid client the
# example policy does not map. Does nothing if OUTDIR already holds a complete set from a CA with
# the requested name that stays valid for more than a day.
set -euo pipefail

script_dir="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd -- "${script_dir}/.." && pwd)"
cnf="${repo_root}/certs/openssl.cnf"

force=0
ca_name="opsagent dev CA"
outdir=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --force) force=1 ;;
    --ca-name)
      [[ $# -ge 2 ]] || { echo "gen-dev-certs.sh: --ca-name needs a value" >&2; exit 2; }
      ca_name="$2"
      shift
      ;;
    --ca-name=*) ca_name="${1#--ca-name=}" ;;
    -h | --help)
      sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "gen-dev-certs.sh: unknown option: $1" >&2
      exit 2
      ;;
    *)
      [[ -z "${outdir}" ]] || { echo "gen-dev-certs.sh: more than one OUTDIR" >&2; exit 2; }
      outdir="$1"
      ;;
  esac
  shift
done
outdir="${outdir:-${repo_root}/certs/dev}"

[[ -n "${ca_name}" ]] || { echo "gen-dev-certs.sh: empty --ca-name" >&2; exit 2; }
[[ -r "${cnf}" ]] || { echo "gen-dev-certs.sh: missing ${cnf}" >&2; exit 1; }
command -v openssl >/dev/null 2>&1 || { echo "gen-dev-certs.sh: openssl not found" >&2; exit 1; }

readonly ca_days=3650
readonly leaf_days=825
readonly clients=(alice ci-bot mallory)
readonly names=(ca server "${clients[@]}")

# Server SAN: localhost, IPv4 and IPv6 loopback, and 127.0.0.2..40 for multi-address fleet tests.
server_san="DNS:localhost,IP:127.0.0.1,IP:::1"
for i in $(seq 2 40); do
  server_san+=",IP:127.0.0.${i}"
done
# Both must be set whenever openssl loads the config (see certs/openssl.cnf).
export OPSAGENT_SERVER_SAN="${server_san}"
export OPSAGENT_CLIENT_SAN="URI:spiffe://opsagent.local/unused"

umask 077
mkdir -p -- "${outdir}"
outdir="$(cd -- "${outdir}" && pwd)"

# True if OUTDIR holds every file, the CA has the requested CN and nothing expires within a day.
existing_set_is_usable() {
  local name
  for name in "${names[@]}"; do
    [[ -s "${outdir}/${name}.crt" && -s "${outdir}/${name}.key" ]] || return 1
    openssl x509 -in "${outdir}/${name}.crt" -noout -checkend 86400 >/dev/null 2>&1 || return 1
  done
  local subject
  subject="$(openssl x509 -in "${outdir}/ca.crt" -noout -subject -nameopt utf8,sep_multiline)"
  [[ "${subject}" == *"CN=${ca_name}" ]] || return 1
  verify_all >/dev/null 2>&1
}

# Verify every leaf against ca.crt for its purpose; fails if any one does not verify.
verify_all() {
  local name rc=0
  openssl verify -x509_strict -CAfile "${outdir}/ca.crt" -purpose sslserver \
    "${outdir}/server.crt" || rc=1
  for name in "${clients[@]}"; do
    openssl verify -x509_strict -CAfile "${outdir}/ca.crt" -purpose sslclient \
      "${outdir}/${name}.crt" || rc=1
  done
  return "${rc}"
}

if [[ "${force}" -eq 0 ]] && existing_set_is_usable; then
  for name in "${names[@]}"; do
    chmod 600 "${outdir}/${name}.key"
  done
  echo "gen-dev-certs.sh: certificates in ${outdir} are valid (CA \"${ca_name}\"); nothing to do" \
    "(use --force to regenerate)"
  exit 0
fi

# Generate into a private directory inside OUTDIR, then move into place, so an interrupted run
# never leaves a mixed set behind.
work="$(mktemp -d "${outdir}/.gen.XXXXXX")"
trap 'rm -rf -- "${work}"' EXIT

# Run openssl without its chatter; show the chatter only if it fails.
ossl() {
  local log
  if ! log="$(openssl "$@" 2>&1)"; then
    echo "gen-dev-certs.sh: openssl $1 failed:" >&2
    echo "${log}" >&2
    return 1
  fi
}

new_key() {
  ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -pkeyopt ec_param_enc:named_curve -out "$1"
  chmod 600 "$1"
}

random_serial() {
  # 127 random bits, first hex digit < 8 so the serial is positive without a leading zero byte.
  local hex
  hex="$(openssl rand -hex 16)"
  echo "0x$(( 16#${hex:0:1} % 8 ))${hex:1}"
}

# sign_leaf NAME CN EXTENSIONS
sign_leaf() {
  local name="$1" cn="$2" ext="$3"
  new_key "${work}/${name}.key"
  ossl req -new -config "${cnf}" -key "${work}/${name}.key" -subj "/CN=${cn}" \
    -out "${work}/${name}.csr"
  ossl x509 -req -in "${work}/${name}.csr" -CA "${work}/ca.crt" -CAkey "${work}/ca.key" \
    -set_serial "$(random_serial)" -days "${leaf_days}" -sha256 \
    -extfile "${cnf}" -extensions "${ext}" -out "${work}/${name}.crt"
  rm -f -- "${work}/${name}.csr"
}

# CA. Escape characters that are special in -subj.
ca_subject_cn="$(printf '%s' "${ca_name}" | sed 's/[\\/+=]/\\&/g')"
new_key "${work}/ca.key"
ossl req -new -x509 -config "${cnf}" -key "${work}/ca.key" -subj "/CN=${ca_subject_cn}" \
  -set_serial "$(random_serial)" -days "${ca_days}" -sha256 -extensions v3_ca \
  -out "${work}/ca.crt"

sign_leaf server opsagent-server v3_server
sign_leaf alice alice v3_client
OPSAGENT_CLIENT_SAN="URI:spiffe://opsagent.local/ci-bot" sign_leaf ci-bot ci-bot v3_client_san
sign_leaf mallory mallory v3_client

for name in "${names[@]}"; do
  chmod 600 "${work}/${name}.key"
  chmod 644 "${work}/${name}.crt"
  mv -f -- "${work}/${name}.key" "${outdir}/${name}.key"
  mv -f -- "${work}/${name}.crt" "${outdir}/${name}.crt"
done

verify_all >/dev/null || { echo "gen-dev-certs.sh: verification failed in ${outdir}" >&2; exit 1; }
echo "gen-dev-certs.sh: CA \"${ca_name}\" + server, ${clients[*]} written to ${outdir}" \
  "(ECDSA P-256, all verified)"
