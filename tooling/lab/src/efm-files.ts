import * as fs from "node:fs";
import * as path from "node:path";
import { LabError } from "./errors.ts";
import type { HostState, LabState } from "./state.ts";

/** Options for writing each host's `<cluster>.properties` and `<cluster>.nodes`. */
export interface EfmFilesOptions {
  /** Output of `efm encrypt` for the lab's efm password under this cluster name (built elsewhere). */
  passwordEncrypted: string;
  /** Agent (membership) port in bind.address; default 7800. */
  agentPort?: number;
  /**
   * admin.port. In loopback mode every agent shares 127.0.0.1, so host i gets adminPort + i;
   * in netns mode each host has its own loopback and all use adminPort. Default 7809.
   */
  adminPort?: number;
  /** Folder per host; default `<runDir>/<host>/efm`. */
  dir?: (host: HostState) => string;
  /** Overrides for every host (any property, including ones the lab does not know). */
  properties?: Record<string, string>;
  /** Overrides for one host, applied after `properties`. */
  hostProperties?: Record<string, Record<string, string>>;
  /**
   * Which agents each `.nodes` file lists: "others" (default, as the guide's example: every other
   * node), "all", or "none" (an empty file, as on the first node of a new cluster).
   */
  nodes?: "others" | "all" | "none";
}

/** What writeEfmFiles produced for one host. */
export interface EfmHostFiles {
  dir: string;
  propertiesFile: string;
  nodesFile: string;
  bindAddress: string;
  adminPort: number;
  properties: Record<string, string>;
}

const CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** The property set for one host, in the order of the guide's template. */
export function efmProperties(
  state: LabState,
  host: HostState,
  index: number,
  options: EfmFilesOptions,
): Record<string, string> {
  const agentPort = options.agentPort ?? 7800;
  const adminBase = options.adminPort ?? 7809;
  const adminPort = state.mode === "loopback" ? adminBase + index : adminBase;
  const witness = host.dataDir === null;
  const props: Record<string, string> = {
    "efm.license": "",
    "auto.failover": "true",
    "auto.reconfigure": "true",
    "db.user": state.efmUser,
    "db.password.encrypted": options.passwordEncrypted,
    "db.port": String(state.port),
    "db.database": state.database,
    "db.reuse.connection.count": "0",
    "jdbc.ssl": "false",
    "admin.port": String(adminPort),
    "local.period": "10",
    "local.timeout": "60",
    "local.timeout.final": "10",
    "remote.timeout": "10",
    "jgroups.max.tries": "8",
    "jgroups.timeout": "5000",
    "user.email": "",
    "bind.address": `${host.address}:${agentPort}`,
    "is.witness": witness ? "true" : "false",
    "db.service.owner": state.dbOwner,
    "db.recovery.conf.dir": host.dataDir ?? "",
    "db.bin": state.pgBin,
    // Ours, not the guide's: PostgreSQL >= 12 keeps recovery settings in the data dir itself.
    "db.data.dir": host.dataDir ?? "",
    virtualIp: "",
    "virtualIp.interface": "",
    "virtualIp.netmask": "",
    pingServerIp: state.bridgeAddress ?? "127.0.0.1",
    pingServerCommand: "/bin/ping -q -c3 -w5",
    "script.fence": "",
    "script.post.promotion": "",
    "script.db.failure": "",
    "script.master.isolated": "",
    "script.notification": "",
    "jgroups.loglevel": "INFO",
    "efm.loglevel": "INFO",
    // Labs run tests and demonstrations: never let one of their masters open a real
    // /dev/watchdog, whose reset a killed test agent would trigger. Pass it to opt in.
    "watchdog.mode": "off",
    ...options.properties,
    ...options.hostProperties?.[host.name],
  };
  for (const [k, v] of Object.entries(props)) {
    if (/[\r\n]/.test(v) || /[\s=:]/.test(k) || k === "") {
      throw new LabError(
        "INVALID_OPTIONS",
        `property ${JSON.stringify(k)} for host ${host.name}: bad key or newline in value`,
      );
    }
  }
  return props;
}

/** Write `<cluster>.properties` and `<cluster>.nodes` for every host; returns where they went. */
export function writeEfmFiles(
  state: LabState,
  clusterName: string,
  options: EfmFilesOptions,
): Record<string, EfmHostFiles> {
  if (!CLUSTER_NAME.test(clusterName)) {
    throw new LabError(
      "INVALID_OPTIONS",
      `cluster name ${JSON.stringify(clusterName)}: use letters, digits, _ . -`,
    );
  }
  const all = state.hosts.map((h, i) => ({ host: h, props: efmProperties(state, h, i, options) }));
  const out: Record<string, EfmHostFiles> = {};
  for (const { host, props } of all) {
    const dir = options.dir?.(host) ?? path.join(host.dir, "efm");
    fs.mkdirSync(dir, { recursive: true });
    const propertiesFile = path.join(dir, `${clusterName}.properties`);
    const nodesFile = path.join(dir, `${clusterName}.nodes`);
    const body = Object.entries(props)
      .map(([k, v]) => `${k}=${v}`)
      .join("\n");
    writeAtomic(
      propertiesFile,
      `# ${clusterName}.properties for ${host.name}, written by @efm/lab\n${body}\n`,
    );
    const mode = options.nodes ?? "others";
    const listed =
      mode === "none"
        ? []
        : all.filter((o) => mode === "all" || o.host !== host).map((o) => o.props["bind.address"] ?? "");
    writeAtomic(nodesFile, listed.length > 0 ? `${listed.join(" ")}\n` : "");
    out[host.name] = {
      dir,
      propertiesFile,
      nodesFile,
      bindAddress: props["bind.address"] ?? "",
      adminPort: Number(props["admin.port"]),
      properties: props,
    };
  }
  return out;
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text, { mode: 0o640 });
  fs.renameSync(tmp, file);
}
