import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { decrypt, encrypt, PasswordCryptoError } from "./crypto.ts";

describe("password-crypto", () => {
  test("round trip under the same cluster name; hex output", () => {
    const token = encrypt("s3cret pa55", "acctg");
    expect(token).toMatch(/^01[0-9a-f]+$/);
    expect(decrypt(token, "acctg")).toBe("s3cret pa55");
  });

  test("another cluster name is refused with WRONG_CLUSTER", () => {
    const token = encrypt("secret", "acctg");
    expect(() => decrypt(token, "sales")).toThrow(PasswordCryptoError);
    try {
      decrypt(token, "sales");
    } catch (e) {
      expect((e as PasswordCryptoError).code).toBe("WRONG_CLUSTER");
      expect((e as Error).message).toContain("sales");
    }
  });

  test("a random nonce makes two encryptions differ", () => {
    expect(encrypt("secret", "acctg")).not.toBe(encrypt("secret", "acctg"));
  });

  test("tampering, truncation, other versions and non-hex are typed errors", () => {
    const token = encrypt("secret", "acctg");
    const flipped = token.slice(0, 40) + (token[40] === "0" ? "1" : "0") + token.slice(41);
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as PasswordCryptoError).code;
      }
      return "none";
    };
    expect(code(() => decrypt(flipped, "acctg"))).toBe("WRONG_CLUSTER");
    expect(code(() => decrypt(token.slice(0, 20), "acctg"))).toBe("MALFORMED_TOKEN");
    expect(code(() => decrypt(`02${token.slice(2)}`, "acctg"))).toBe("UNSUPPORTED_VERSION");
    expect(code(() => decrypt("835fb18954f198e94fd3d6f4b070350b", "acctg"))).toBe("UNSUPPORTED_VERSION");
    expect(code(() => decrypt("not hex", "acctg"))).toBe("MALFORMED_TOKEN");
    expect(code(() => encrypt("", "acctg"))).toBe("EMPTY_PASSWORD");
  });

  test("any password and cluster name round-trip (fast-check)", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string(), (pw, cluster) => {
        expect(decrypt(encrypt(pw, cluster), cluster)).toBe(pw);
      }),
      { numRuns: 200 },
    );
  });
});
