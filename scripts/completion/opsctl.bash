# bash completion for opsctl (docs/opsctl.md): options, option values, inventory groups and
# hosts for TARGETS and --limit (from `opsctl -i INVENTORY --list-names`, with the -i given or
# $OPSCTL_INVENTORY) and agent commands after TARGETS. Install: copy to
# /usr/share/bash-completion/completions/opsctl, or `source` it from ~/.bashrc.

# Completes the last term of a pattern ("web,d" -> "web,db1") with the inventory's groups and
# hosts; a leading '!' or '&' of the term is kept.
_opsctl_names() {
  local inventory="$1" head="" term="${cur}" mark=""
  [[ -z "${inventory}" ]] && return 0
  if [[ "${cur}" == *,* ]]; then
    head="${cur%,*},"
    term="${cur##*,}"
  fi
  if [[ "${term}" == [\!\&]* ]]; then
    mark="${term:0:1}"
    term="${term:1}"
  fi
  local names
  names="$(opsctl -i "${inventory}" --list-names 2>/dev/null)"
  local IFS=$'\n'
  COMPREPLY=($(compgen -P "${head}${mark}" -W "${names}" -- "${term}"))
}

_opsctl() {
  local cur prev words cword
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD - 1]}"
  local opts="-i --inventory -c --config --cert --key --ca -p --port -o --output --json --table
    --collapse --sort -q --quiet --color --raw-bytes -j --concurrency --connect-timeout
    --handshake-timeout -t --timeout --no-summary --list-targets --list-names -l --limit --retry
    --retry-file --serial --max-fail -h --help --version"
  local with_value="-i --inventory -c --config --cert --key --ca -p --port -o --output -j
    --concurrency --connect-timeout --handshake-timeout -t --timeout -l --limit --retry
    --retry-file --serial --max-fail --color --colour"

  # The inventory named so far (-i FILE, --inventory=FILE, else $OPSCTL_INVENTORY).
  local i inventory="${OPSCTL_INVENTORY:-}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in
      -i | --inventory) inventory="${COMP_WORDS[i + 1]}" ;;
      --inventory=*) inventory="${COMP_WORDS[i]#--inventory=}" ;;
    esac
  done

  case "${prev}" in
    -i | --inventory | -c | --config | --cert | --key | --ca | --retry-file)
      COMPREPLY=($(compgen -f -- "${cur}"))
      return 0
      ;;
    -o | --output)
      COMPREPLY=($(compgen -W "raw prefix grouped json table" -- "${cur}"))
      return 0
      ;;
    --color | --colour)
      COMPREPLY=($(compgen -W "auto always never" -- "${cur}"))
      return 0
      ;;
    -l | --limit)
      _opsctl_names "${inventory}"
      return 0
      ;;
    -p | --port | -j | --concurrency | --connect-timeout | --handshake-timeout | -t | --timeout | \
      --retry | --serial | --max-fail)
      return 0
      ;;
  esac

  # Where TARGETS is: the first word that is not an option or an option's value.
  local targets_at=0
  for ((i = 1; i < COMP_CWORD; i++)); do
    local w="${COMP_WORDS[i]}"
    if [[ " ${with_value} " == *" ${w} "* ]]; then
      ((i++))
      continue
    fi
    [[ "${w}" == -* ]] && continue
    targets_at=${i}
    break
  done

  if [[ ${targets_at} -eq 0 ]]; then
    if [[ "${cur}" == -* ]]; then
      COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
    else
      _opsctl_names "${inventory}"
    fi
    return 0
  fi
  if [[ $((COMP_CWORD - targets_at)) -eq 1 ]]; then
    COMPREPLY=($(compgen -W "ping whoami run tail hash comphash lastlog help" -- "${cur}"))
  fi
  return 0
}
complete -F _opsctl opsctl
