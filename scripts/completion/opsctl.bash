# bash completion for opsctl (docs/opsctl.md): options, option values, inventory hosts for
# TARGETS (from `opsctl --list-targets all` with the -i given or $OPSCTL_INVENTORY) and agent
# commands after TARGETS. Install: copy to /usr/share/bash-completion/completions/opsctl, or
# `source` it from ~/.bashrc.

_opsctl() {
  local cur prev words cword
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD - 1]}"
  local opts="-i --inventory -c --config --cert --key --ca -p --port -o --output --json
    --raw-bytes -j --concurrency --connect-timeout --handshake-timeout -t --timeout --no-summary
    --list-targets -l --limit --retry --retry-file --serial --max-fail -h --help --version"
  local with_value="-i --inventory -c --config --cert --key --ca -p --port -o --output -j
    --concurrency --connect-timeout --handshake-timeout -t --timeout -l --limit --retry
    --retry-file --serial --max-fail"

  case "${prev}" in
    -i | --inventory | -c | --config | --cert | --key | --ca | --retry-file)
      COMPREPLY=($(compgen -f -- "${cur}"))
      return 0
      ;;
    -o | --output)
      COMPREPLY=($(compgen -W "raw prefix grouped json" -- "${cur}"))
      return 0
      ;;
    -p | --port | -j | --concurrency | --connect-timeout | --handshake-timeout | -t | --timeout | \
      --retry | --serial | --max-fail | -l | --limit)
      return 0
      ;;
  esac

  # Find the inventory and where TARGETS is (the first word that is not an option or a value).
  local i inventory="${OPSCTL_INVENTORY:-}" targets_at=0
  for ((i = 1; i < COMP_CWORD; i++)); do
    local w="${COMP_WORDS[i]}"
    if [[ " ${with_value} " == *" ${w} "* ]]; then
      [[ "${w}" == "-i" || "${w}" == "--inventory" ]] && inventory="${COMP_WORDS[i + 1]}"
      ((i++))
      continue
    fi
    [[ "${w}" == --inventory=* ]] && inventory="${w#--inventory=}" && continue
    [[ "${w}" == -* ]] && continue
    targets_at=${i}
    break
  done

  if [[ ${targets_at} -eq 0 ]]; then
    if [[ "${cur}" == -* ]]; then
      COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
    elif [[ -n "${inventory}" ]]; then
      local hosts
      hosts="$(opsctl -i "${inventory}" --list-targets all 2>/dev/null | cut -f1)"
      COMPREPLY=($(compgen -W "all ${hosts}" -- "${cur}"))
    fi
    return 0
  fi
  if [[ $((COMP_CWORD - targets_at)) -eq 1 ]]; then
    COMPREPLY=($(compgen -W "ping whoami run tail hash comphash lastlog help" -- "${cur}"))
  fi
  return 0
}
complete -F _opsctl opsctl
