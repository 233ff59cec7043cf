export {
  clusterKey,
  decrypt,
  encrypt,
  PASSWORD_CRYPTO_CODES,
  type PasswordCryptoCode,
  PasswordCryptoError,
} from "./crypto.ts";
