export {
  addressFamily,
  type Family,
  type InterfaceSpec,
  netmaskToPrefix,
  normalizeAddress,
  parseInterface,
  prefixToNetmask,
} from "./address.ts";
export { main as addressCliMain } from "./cli.ts";
export { isVipError, VIP_ERROR_CODES, VipError, type VipErrorCode } from "./errors.ts";
export {
  type AssignResult,
  assign,
  type HeldAddress,
  isHeldLocally,
  isReachable,
  listAddresses,
  pingArgv,
  release,
  type VipOptions,
} from "./vip.ts";
