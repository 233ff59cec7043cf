import { join } from "node:path";

/** The directory holding `<cluster>.properties` and `<cluster>.nodes`. */
export function configDir(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag ?? env.EFM_CONFIG_DIR ?? "/etc/efm";
}

/** Paths of a cluster's two files. */
export function clusterFiles(dir: string, cluster: string): { properties: string; nodes: string } {
  return { properties: join(dir, `${cluster}.properties`), nodes: join(dir, `${cluster}.nodes`) };
}
