# bash completion for efm and efm-agent.
# Generated from the commander definitions by apps/efm/src/manual.ts: do not edit.
# Install as /usr/share/bash-completion/completions/efm (and a link named efm-agent).

_efm() {
  local cur=${COMP_WORDS[COMP_CWORD]} dir="${EFM_CONFIG_DIR:-/etc/efm}" cmd="" opts="" i n=0
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      --config-dir) dir=${COMP_WORDS[i + 1]}; ((i++)) ;;
      -*) ;;
      *) if [[ -z $cmd ]]; then cmd=${COMP_WORDS[i]}; else ((n++)); fi ;;
    esac
  done
  if [[ ${COMP_WORDS[COMP_CWORD - 1]} == --config-dir ]]; then
    COMPREPLY=($(compgen -d -- "$cur"))
    return
  fi
  if [[ -z $cmd ]]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "--version --config-dir --help" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "add-node allow-node cluster-status cluster-status-json decision-table disallow-node encrypt init-secret prop-check promote remove-node resume stop-cluster node-status-json set-priority" -- "$cur"))
    fi
    return
  fi
  case $cmd in
      add-node) opts="--help" ;;
      allow-node) opts="--help" ;;
      cluster-status) opts="--help" ;;
      cluster-status-json) opts="--help" ;;
      decision-table) opts="--dot --help" ;;
      disallow-node) opts="--help" ;;
      encrypt) opts="--from-env --help" ;;
      init-secret) opts="--replace --help" ;;
      prop-check) opts="--help" ;;
      promote) opts="--force --switchover --to --help" ;;
      remove-node) opts="--help" ;;
      resume) opts="--help" ;;
      stop-cluster) opts="--help" ;;
      node-status-json) opts="--help" ;;
      set-priority) opts="--help" ;;
      *) return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif ((n == 0)); then
    # The first argument of every command is the cluster: the base names of <dir>/*.properties.
    local f clusters=()
    for f in "$dir"/*.properties; do [[ -e $f ]] && clusters+=("$(basename "$f" .properties)"); done
    COMPREPLY=($(compgen -W "${clusters[*]}" -- "$cur"))
  fi
}
complete -F _efm efm

_efm_agent() {
  local cur=${COMP_WORDS[COMP_CWORD]} dir="${EFM_CONFIG_DIR:-/etc/efm}" cmd="" opts="" i n=0
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      --config-dir) dir=${COMP_WORDS[i + 1]}; ((i++)) ;;
      -*) ;;
      *) if [[ -z $cmd ]]; then cmd=${COMP_WORDS[i]}; else ((n++)); fi ;;
    esac
  done
  if [[ ${COMP_WORDS[COMP_CWORD - 1]} == --config-dir ]]; then
    COMPREPLY=($(compgen -d -- "$cur"))
    return
  fi
  if [[ -z $cmd ]]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "--version --help" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "start" -- "$cur"))
    fi
    return
  fi
  case $cmd in
      start) opts="--config-dir --bootstrap --wait --help" ;;
      *) return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif ((n == 0)); then
    # The first argument of every command is the cluster: the base names of <dir>/*.properties.
    local f clusters=()
    for f in "$dir"/*.properties; do [[ -e $f ]] && clusters+=("$(basename "$f" .properties)"); done
    COMPREPLY=($(compgen -W "${clusters[*]}" -- "$cur"))
  fi
}
complete -F _efm_agent efm-agent
