export {
  addressFamily,
  type Family,
  type InterfaceSpec,
  netmaskToPrefix,
  normalizeAddress,
  parseInterface,
  prefixToNetmask,
} from "./address.ts";
export {
  ADDRESS_USAGE,
  ADDRESS_VERBS,
  type AddressRequest,
  type AddressVerb,
  main as addressCliMain,
  parseAddressArgs,
  readVipFacts,
} from "./cli.ts";
export {
  DEFAULT_PING,
  isPingProgram,
  isReachable,
  isReplyFrom,
  pingArgv,
  pingWithin,
  withoutQuiet,
} from "./ping.ts";
export { isVipError, VIP_ERROR_CODES, VipError, type VipErrorCode } from "./errors.ts";
export { startSpawner } from "./spawner.ts";
export {
  type AddressHelper,
  type AssignResult,
  assign,
  defaultAddressCommand,
  type HeldAddress,
  isHeldLocally,
  listAddresses,
  release,
  type VipOptions,
} from "./vip.ts";
