import type { Command, Help } from "commander";

/** What a manual page says beyond the commander definitions (files, environment, exit status). */
export interface ManExtra {
  section: 1 | 8;
  /** The centre header, e.g. "User Commands". */
  manual: string;
  /** Extra sections in order, each a title and paragraphs of plain text. */
  sections: { title: string; paragraphs: string[] }[];
  seeAlso: string[];
}

/** Escape text for roff: backslashes, hyphens (so they print and copy as ASCII), leading dots. */
function roff(text: string): string {
  return text
    .replace(/\\/g, "\\e")
    .replace(/-/g, "\\-")
    .replace(/^([.'])/gm, "\\&$1");
}

/** A term in bold with its <placeholders> and [optionals] in italics. */
function term(text: string): string {
  return roff(text).replace(/(<[^>]+>|\[[^\]]+\])/g, "\\fI$1\\fB");
}

function helpOf(cmd: Command): Help {
  return cmd.createHelp();
}

/** The options and arguments of one command as roff paragraphs. */
function entries(cmd: Command, help: Help, withHelpOption: boolean): string[] {
  const out: string[] = [];
  for (const a of help.visibleArguments(cmd)) {
    out.push(".TP", `\\fI${roff(help.argumentTerm(a))}\\fR`, roff(help.argumentDescription(a)));
  }
  for (const o of help.visibleOptions(cmd)) {
    if (!withHelpOption && o.long === "--help") continue;
    out.push(".TP", `\\fB${term(help.optionTerm(o))}\\fR`, roff(help.optionDescription(o)));
  }
  return out;
}

/**
 * A manual page generated from a commander program: the synopsis, options and every command
 * with its arguments and options, in the words `--help` prints. Generated, never edited, so the
 * page cannot drift from the program (the unit test compares the checked-in file).
 */
export function renderManPage(program: Command, extra: ManExtra): string {
  const help = helpOf(program);
  const name = program.name();
  const lines: string[] = [
    `.\\" Generated from the commander definitions by apps/efm/src/manual.ts: do not edit.`,
    `.TH ${roff(name.toUpperCase())} ${extra.section} "" "efm\\-ts" "${extra.manual}"`,
    ".SH NAME",
    `${roff(name)} \\- ${roff(program.description())}`,
    ".SH SYNOPSIS",
    `\\fB${roff(name)}\\fR ${term(program.usage())}`,
  ];
  const commands = help.visibleCommands(program).filter((c) => c.name() !== "help");
  for (const c of commands) lines.push(".br", `\\fB${roff(name)} ${term(help.subcommandTerm(c))}\\fR`);
  lines.push(".SH DESCRIPTION", roff(program.description()));
  lines.push(".SH OPTIONS", ...entries(program, help, true));
  lines.push(".SH COMMANDS");
  for (const c of commands) {
    const h = helpOf(c);
    lines.push(".SS", `\\fB${roff(name)} ${term(help.subcommandTerm(c))}\\fR`, roff(c.description()));
    // Every command takes -h/--help; OPTIONS lists it once instead of under each command.
    const own = entries(c, h, false);
    if (own.length > 0) lines.push(".RS", ...own, ".RE");
  }
  for (const s of extra.sections) {
    lines.push(`.SH ${roff(s.title.toUpperCase())}`);
    s.paragraphs.forEach((p, i) => {
      if (i > 0) lines.push(".PP");
      lines.push(roff(p));
    });
  }
  lines.push(
    ".SH SEE ALSO",
    extra.seeAlso.map((s) => `\\fB${roff(s.replace(/\(.*$/, ""))}\\fR${s.slice(s.indexOf("("))}`).join(",\n"),
  );
  return `${lines.join("\n")}\n`;
}

/**
 * Bash completion for `efm` and `efm-agent`: command names and options from the programs, and
 * cluster names from the `*.properties` files of the config directory (`--config-dir`, then
 * EFM_CONFIG_DIR, then /etc/efm), as the commands themselves look for them.
 */
export function renderCompletion(efm: Command, agent: Command): string {
  const names = (p: Command) =>
    p.commands
      .map((c) => c.name())
      .filter((n) => n !== "help")
      .join(" ");
  const cases = (p: Command) =>
    p.commands
      .filter((c) => c.name() !== "help")
      .map((c) => {
        const opts = c.options.map((o) => o.long ?? o.short).filter(Boolean);
        return `      ${c.name()}) opts="${[...opts, "--help"].join(" ")}" ;;`;
      })
      .join("\n");
  const fn = (p: Command, f: string) => `${f}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} dir="\${EFM_CONFIG_DIR:-/etc/efm}" cmd="" opts="" i n=0
  for ((i = 1; i < COMP_CWORD; i++)); do
    case \${COMP_WORDS[i]} in
      --config-dir) dir=\${COMP_WORDS[i + 1]}; ((i++)) ;;
      -*) ;;
      *) if [[ -z $cmd ]]; then cmd=\${COMP_WORDS[i]}; else ((n++)); fi ;;
    esac
  done
  if [[ \${COMP_WORDS[COMP_CWORD - 1]} == --config-dir ]]; then
    COMPREPLY=($(compgen -d -- "$cur"))
    return
  fi
  if [[ -z $cmd ]]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "${p.options.map((o) => o.long).join(" ")} --help" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "${names(p)}" -- "$cur"))
    fi
    return
  fi
  case $cmd in
${cases(p)}
      *) return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif ((n == 0)); then
    # The first argument of every command is the cluster: the base names of <dir>/*.properties.
    local f clusters=()
    for f in "$dir"/*.properties; do [[ -e $f ]] && clusters+=("$(basename "$f" .properties)"); done
    COMPREPLY=($(compgen -W "\${clusters[*]}" -- "$cur"))
  fi
}`;
  return `# bash completion for efm and efm-agent.
# Generated from the commander definitions by apps/efm/src/manual.ts: do not edit.
# Install as /usr/share/bash-completion/completions/efm (and a link named efm-agent).

${fn(efm, "_efm")}
complete -F _efm efm

${fn(agent, "_efm_agent")}
complete -F _efm_agent efm-agent
`;
}
