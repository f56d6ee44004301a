/*
 * crypto: guarded secrets, AES-256-GCM AEAD, a streaming AEAD, HKDF-SHA256,
 * HMAC-SHA256, key rings of versioned root keys with derived purpose keys,
 * KEK providers (file, PKCS#11, imported) and the RSA-OAEP transport key used
 * to import a tenant's own KEK (BYOK). Built on GnuTLS (AEAD, HKDF, HMAC, RSA
 * key generation), libsodium (guarded memory, wiping, randomness), p11-kit
 * (PKCS#11 modules) and libgcrypt (RSA-OAEP decryption, which GnuTLS 3.7
 * lacks). No I/O except the KEK providers. See src/crypto/README.md.
 *
 * API shape (STYLE 26, after libsodium): output first, then inputs, then
 * lengths as size_t, key last. `open`/`verify`/`unwrap` have a single
 * authentication failure code (FV_E_CORRUPT) so they are not an oracle.
 * Misuse (a wrong key size, a NULL key) aborts through FV_ASSERT.
 */
#ifndef FV_CRYPTO_H
#define FV_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#define FV_CRYPTO_KEY_BYTES 32   /* AES-256 and HMAC-SHA256 keys */
#define FV_CRYPTO_NONCE_BYTES 12 /* AES-GCM nonce (SP 800-38D 8.2.2, random) */
#define FV_CRYPTO_TAG_BYTES 16   /* AES-GCM tag */
#define FV_CRYPTO_MAC_BYTES 32   /* HMAC-SHA256 output */
/* fv_crypto_aead_seal() output: nonce || ciphertext || tag. */
#define FV_CRYPTO_AEAD_OVERHEAD (FV_CRYPTO_NONCE_BYTES + FV_CRYPTO_TAG_BYTES)

/* ---------------------------------------------------------------- secrets */

/*
 * A secret of len bytes in libsodium guarded memory: sodium_malloc (guard
 * pages, canary), locked (sodium_mlock, which also sets MADV_DONTDUMP) and
 * read-only after creation (sodium_mprotect_readonly). Each costs at least
 * three pages: use for long-lived keys. Immutable, so thread-safe to read.
 */
struct fv_secret;

/* New secret of len (1..4096) random bytes. FV_E_NOMEM. */
FV_MUST_CHECK int fv_crypto_secret_random(struct fv_secret **ret, size_t len);
/* New secret holding a copy of p[0..len) (1..4096); the caller wipes p. FV_E_NOMEM. */
FV_MUST_CHECK int fv_crypto_secret_copy(struct fv_secret **ret, const uint8_t *p, size_t len);
const uint8_t *fv_crypto_secret_bytes(const struct fv_secret *s);
size_t fv_crypto_secret_len(const struct fv_secret *s);
/* Wipe and free (sodium_free). Accepts NULL. */
void fv_crypto_secret_free(struct fv_secret *s);

/* ------------------------------------------------------------ AEAD (GCM) */

/*
 * A keyed AES-256-GCM context (NIST SP 800-38D) on GnuTLS. Not thread-safe:
 * one per thread, per open file or per connection. The key schedule lives in
 * GnuTLS memory; serve sets PR_SET_DUMPABLE 0 so it never reaches a core file.
 */
struct fv_aead;

/* key must be FV_CRYPTO_KEY_BYTES. FV_E_NOMEM, FV_E_INTERNAL (GnuTLS). */
FV_MUST_CHECK int fv_crypto_aead_new(struct fv_aead **ret, const struct fv_secret *key);
/* Same, from raw key bytes (tests, derived keys held in a stack buffer). */
FV_MUST_CHECK int fv_crypto_aead_new_raw(struct fv_aead **ret, const uint8_t key[32]);
void fv_crypto_aead_free(struct fv_aead *a);

/*
 * Detached seal: c[0..mlen) = ciphertext (c may equal m), tag[16]. The caller
 * supplies a nonce that is never reused under this key (random 96-bit nonces:
 * at most 2^32 seals per key, SP 800-38D 8.3). FV_E_INTERNAL on GnuTLS failure.
 */
FV_MUST_CHECK int fv_crypto_aead_seal_detached(uint8_t *c, uint8_t tag[FV_CRYPTO_TAG_BYTES],
                                               const uint8_t *m, size_t mlen, const uint8_t *ad,
                                               size_t adlen,
                                               const uint8_t nonce[FV_CRYPTO_NONCE_BYTES],
                                               struct fv_aead *key);
/* Detached open: m[0..clen) (m may equal c). FV_E_CORRUPT if the tag does not verify. */
FV_MUST_CHECK int fv_crypto_aead_open_detached(uint8_t *m, const uint8_t *c, size_t clen,
                                               const uint8_t tag[FV_CRYPTO_TAG_BYTES],
                                               const uint8_t *ad, size_t adlen,
                                               const uint8_t nonce[FV_CRYPTO_NONCE_BYTES],
                                               struct fv_aead *key);
/*
 * Combined seal with a fresh random nonce: c[0 .. mlen + FV_CRYPTO_AEAD_OVERHEAD)
 * = nonce || ciphertext || tag. c must not overlap m. FV_E_INTERNAL.
 */
FV_MUST_CHECK int fv_crypto_aead_seal(uint8_t *c, const uint8_t *m, size_t mlen, const uint8_t *ad,
                                      size_t adlen, struct fv_aead *key);
/*
 * Combined open of nonce || ciphertext || tag (clen >= FV_CRYPTO_AEAD_OVERHEAD):
 * m[0 .. clen - FV_CRYPTO_AEAD_OVERHEAD). FV_E_CORRUPT if short or forged.
 */
FV_MUST_CHECK int fv_crypto_aead_open(uint8_t *m, const uint8_t *c, size_t clen, const uint8_t *ad,
                                      size_t adlen, struct fv_aead *key);

/* ----------------------------------------------------------- HKDF / HMAC */

/*
 * HKDF-SHA256 (RFC 5869 2.2 extract + 2.3 expand) into out[0..outlen),
 * outlen <= 255 * 32. salt may be NULL (zero-length). FV_E_INVALID for a
 * bad outlen, FV_E_INTERNAL on GnuTLS failure.
 */
FV_MUST_CHECK int fv_crypto_hkdf_sha256(uint8_t *out, size_t outlen, const uint8_t *ikm,
                                        size_t ikmlen, const uint8_t *salt, size_t saltlen,
                                        const uint8_t *info, size_t infolen);
/*
 * Derive a 32-byte key from root with HKDF-SHA256, no salt, and
 * info = "formvault/" label || 0x00 || ctx (ctx may be NULL/0). Distinct
 * labels give independent keys. Returns a new secret. FV_E_NOMEM, FV_E_INTERNAL.
 */
FV_MUST_CHECK int fv_crypto_kdf_derive(struct fv_secret **ret, const char *label,
                                       const uint8_t *ctx, size_t ctxlen,
                                       const struct fv_secret *root);
/* Same into a caller buffer (wipe it after use). */
FV_MUST_CHECK int fv_crypto_kdf_derive_raw(uint8_t out[FV_CRYPTO_KEY_BYTES], const char *label,
                                           const uint8_t *ctx, size_t ctxlen,
                                           const struct fv_secret *root);
/* HMAC-SHA256 (RFC 2104) of m under key (any length). FV_E_INTERNAL. */
FV_MUST_CHECK int fv_crypto_hmac_sha256(uint8_t out[FV_CRYPTO_MAC_BYTES], const uint8_t *m,
                                        size_t mlen, const struct fv_secret *key);

/* --------------------------------------------------------- streaming AEAD */

/*
 * Streaming AEAD for files and backup archives: the STREAM construction
 * (Hoang, Reyhanitabar, Rogaway, Vizar 2015) as in Tink's
 * AES-GCM-HKDF streaming AEAD: a header holds a random salt and a nonce
 * prefix; the segment key is HKDF-SHA256(key, salt, ad); segment i is
 * AES-256-GCM with nonce = prefix(7) || i (4, big-endian) || last (1).
 * Every plaintext segment is FV_CRYPTO_STREAM_SEGMENT bytes except the
 * last, which is 0..SEGMENT bytes and marked. Truncation, reordering,
 * duplication and bit flips are detected (FV_E_CORRUPT).
 */
#define FV_CRYPTO_STREAM_SEGMENT (64 * 1024)
#define FV_CRYPTO_STREAM_HEADER_BYTES 40 /* version(1) salt(32) prefix(7) */
#define FV_CRYPTO_STREAM_SEGMENT_OVERHEAD FV_CRYPTO_TAG_BYTES

struct fv_stream;

/* Start sealing; writes header[FV_CRYPTO_STREAM_HEADER_BYTES]. FV_E_NOMEM, FV_E_INTERNAL. */
FV_MUST_CHECK int fv_crypto_stream_seal_new(struct fv_stream **ret,
                                            uint8_t header[FV_CRYPTO_STREAM_HEADER_BYTES],
                                            const uint8_t *ad, size_t adlen,
                                            const struct fv_secret *key);
/*
 * Seal the next segment: c[0 .. mlen + 16). mlen must be SEGMENT unless last.
 * After the last segment the stream accepts nothing (FV_E_INVALID).
 */
FV_MUST_CHECK int fv_crypto_stream_seal_push(uint8_t *c, const uint8_t *m, size_t mlen, bool last,
                                             struct fv_stream *st);
/* Start opening from a header. FV_E_CORRUPT (bad version), FV_E_NOMEM, FV_E_INTERNAL. */
FV_MUST_CHECK int fv_crypto_stream_open_new(struct fv_stream **ret,
                                            const uint8_t header[FV_CRYPTO_STREAM_HEADER_BYTES],
                                            const uint8_t *ad, size_t adlen,
                                            const struct fv_secret *key);
/*
 * Open the next segment c[0..clen) (16 < clen <= SEGMENT + 16; a final segment may be 16) into
 * m[0 .. clen - 16); `last` says whether the caller believes it is the final
 * segment (it is at end of input). FV_E_CORRUPT if it fails authentication,
 * which includes a final segment presented as non-final and vice versa.
 */
FV_MUST_CHECK int fv_crypto_stream_open_pull(uint8_t *m, const uint8_t *c, size_t clen, bool last,
                                             struct fv_stream *st);
void fv_crypto_stream_free(struct fv_stream *st);
/*
 * Whole-file helpers: seal in_fd to out_fd (header then segments), or open
 * in_fd to out_fd. FV_E_IO (read/write failed), FV_E_CORRUPT (open: forged,
 * truncated, reordered or trailing data), FV_E_NOMEM. Offsets: from the
 * descriptors' current positions.
 */
FV_MUST_CHECK int fv_crypto_stream_seal_fd(int out_fd, int in_fd, const uint8_t *ad, size_t adlen,
                                           const struct fv_secret *key);
FV_MUST_CHECK int fv_crypto_stream_open_fd(int out_fd, int in_fd, const uint8_t *ad, size_t adlen,
                                           const struct fv_secret *key);

/* ---------------------------------------------------------------- keyring */

/*
 * Purpose keys derived from one root-key version with HKDF-SHA256 and
 * distinct labels (DESIGN.md "Keys"), context = the keyring owner (tenant ID
 * text, or "node"):
 *   storage "storage"  page encryption (per-file subkeys derived from it)
 *   field   "field"    field-level AES-256-GCM
 *   blind   "blind-index"  HMAC blind indexes
 *   file    "file"     uploaded files (streaming AEAD)
 *   audit   "audit-mac"    audit chain MAC
 */
enum fv_key_purpose {
    FV_KEY_STORAGE = 0,
    FV_KEY_FIELD,
    FV_KEY_BLIND,
    FV_KEY_FILE,
    FV_KEY_AUDIT,
    FV_KEY_PURPOSES
};

/*
 * The live versions (1..UINT32_MAX) of one owner's root key, each with its
 * derived purpose keys, and the version used for new writes. Reference
 * counted and thread-safe (an internal rwlock); revocation wipes every key at
 * once and bumps the generation so consumers that cache contexts rebuild.
 */
struct fv_keyring;

#define FV_CRYPTO_KEYRING_MAX_VERSIONS 8

/* New empty keyring (refcount 1) for owner (copied, <= 64 bytes). FV_E_NOMEM. */
FV_MUST_CHECK int fv_crypto_keyring_new(struct fv_keyring **ret, const char *owner);
struct fv_keyring *fv_crypto_keyring_ref(struct fv_keyring *kr);
/* Drop a reference; the last one wipes and frees. Accepts NULL. */
void fv_crypto_keyring_unref(struct fv_keyring *kr);
/*
 * Add root key `version` (borrowed; purpose keys are derived and held, the
 * root is not kept). If it is the first version it becomes the write
 * version. FV_E_CONFLICT (version present), FV_E_LIMIT (too many versions),
 * FV_E_NOMEM, FV_E_INTERNAL. Clears a revocation.
 */
FV_MUST_CHECK int fv_crypto_keyring_add(struct fv_keyring *kr, uint32_t version,
                                        const struct fv_secret *root);
/* Make version the write version. FV_E_NOT_FOUND if absent. */
FV_MUST_CHECK int fv_crypto_keyring_set_write(struct fv_keyring *kr, uint32_t version);
/* Write version, or 0 if the keyring is empty or revoked. */
uint32_t fv_crypto_keyring_write_version(struct fv_keyring *kr);
/* Wipe and forget one version. No-op if absent. */
void fv_crypto_keyring_remove(struct fv_keyring *kr, uint32_t version);
/* Wipe every version (key unavailable until keys are added again). */
void fv_crypto_keyring_revoke(struct fv_keyring *kr);
/* Changes on every add, remove, set_write and revoke. */
uint64_t fv_crypto_keyring_generation(struct fv_keyring *kr);
/* Live versions, ascending, into out[0..max); returns how many exist. */
size_t fv_crypto_keyring_versions(struct fv_keyring *kr, uint32_t *out, size_t max);
/*
 * A new AEAD context keyed with purpose key `version`, or with a subkey
 * HKDF(purpose key, label "sub", ctx) when ctx is not NULL (per-file page
 * keys: ctx = the file identity). Caller frees it. FV_E_KEY_UNAVAILABLE if
 * the version is absent or revoked, FV_E_NOMEM, FV_E_INTERNAL.
 */
FV_MUST_CHECK int fv_crypto_keyring_aead(struct fv_aead **ret, struct fv_keyring *kr,
                                         uint32_t version, enum fv_key_purpose purpose,
                                         const uint8_t *ctx, size_t ctxlen);
/*
 * HMAC-SHA256 of m under purpose key `version` (blind indexes, audit MACs).
 * FV_E_KEY_UNAVAILABLE, FV_E_INTERNAL.
 */
FV_MUST_CHECK int fv_crypto_keyring_mac(uint8_t out[FV_CRYPTO_MAC_BYTES], const uint8_t *m,
                                        size_t mlen, struct fv_keyring *kr, uint32_t version,
                                        enum fv_key_purpose purpose);
/* A copy of purpose key `version` (streaming AEAD of files). FV_E_KEY_UNAVAILABLE, FV_E_NOMEM. */
FV_MUST_CHECK int fv_crypto_keyring_secret(struct fv_secret **ret, struct fv_keyring *kr,
                                           uint32_t version, enum fv_key_purpose purpose);

/* ----------------------------------------------------------- KEK providers */

/*
 * A key-encryption key behind one interface (STYLE 4): it wraps and unwraps
 * 32-byte root keys and never hands out its own key material. Wrapped blobs
 * are self-describing (format byte first) and at most FV_CRYPTO_WRAPPED_MAX
 * bytes; the associated data binds a blob to its use (owner and version),
 * so a blob moved to another tenant or version fails to unwrap.
 * Implementations: kek_file.c, kek_pkcs11.c, kek_secret.c (imported BYOK).
 * Thread-safe (providers serialise access to a PKCS#11 session).
 */
#define FV_CRYPTO_WRAPPED_MAX 256
#define FV_CRYPTO_KEK_ID_MAX 128

struct fv_kek;

struct fv_kek_ops {
    int version;      /* FV_CRYPTO_KEK_OPS_VERSION */
    const char *name; /* "file", "pkcs11", "imported" */
    int (*wrap)(struct fv_kek *kek, uint8_t *out, size_t *ret_len, const uint8_t *key,
                size_t keylen, const uint8_t *ad, size_t adlen);
    int (*unwrap)(struct fv_kek *kek, uint8_t *out, size_t *ret_len, const uint8_t *blob,
                  size_t bloblen, const uint8_t *ad, size_t adlen);
    int (*check)(struct fv_kek *kek);
    void (*free)(struct fv_kek *kek);
};
#define FV_CRYPTO_KEK_OPS_VERSION 1

struct fv_kek {
    const struct fv_kek_ops *ops;
    char id[FV_CRYPTO_KEK_ID_MAX]; /* public key ID: names the key, reveals nothing of it */
};

/*
 * Wrap the 32-byte secret `key` under kek with associated data ad:
 * out[0..*ret_len), out has FV_CRYPTO_WRAPPED_MAX bytes.
 * FV_E_KEY_UNAVAILABLE (provider unreachable: HSM gone, session lost),
 * FV_E_INTERNAL.
 */
FV_MUST_CHECK int fv_crypto_kek_wrap(uint8_t out[FV_CRYPTO_WRAPPED_MAX], size_t *ret_len,
                                     const struct fv_secret *key, const uint8_t *ad, size_t adlen,
                                     struct fv_kek *kek);
/*
 * Unwrap a blob made by fv_crypto_kek_wrap with the same kek and ad into a
 * new 32-byte secret. FV_E_CORRUPT (wrong KEK, wrong ad, corrupted blob:
 * one code), FV_E_KEY_UNAVAILABLE (provider unreachable), FV_E_NOMEM.
 */
FV_MUST_CHECK int fv_crypto_kek_unwrap(struct fv_secret **ret, const uint8_t *blob, size_t bloblen,
                                       const uint8_t *ad, size_t adlen, struct fv_kek *kek);
/* Provider reachable and the key present: FV_OK or FV_E_KEY_UNAVAILABLE. */
FV_MUST_CHECK int fv_crypto_kek_check(struct fv_kek *kek);
const char *fv_crypto_kek_id(const struct fv_kek *kek);
/* Accepts NULL. */
void fv_crypto_kek_free(struct fv_kek *kek);

/*
 * file provider: a 32-byte key in a file outside the data directory
 * (DESIGN.md "Keys"). Open refuses, with a message in reterr naming the
 * problem: a missing or unreadable file (FV_E_KEY_UNAVAILABLE), a file
 * inside data_dir after resolving symlinks, a non-regular file, a mode
 * readable or writable by group or others, or a size other than 32 bytes
 * (FV_E_INVALID). The key ID is "file:" + hex of the first 8 bytes of
 * HMAC-SHA256(key, "formvault key id"). AES-256-GCM wrap, blob = 0x01 ||
 * nonce || ciphertext || tag.
 */
FV_MUST_CHECK int fv_crypto_kek_file_open(struct fv_kek **ret, const char *path,
                                          const char *data_dir, struct fv_error *reterr);
/* Create path (O_EXCL, mode 0400) with 32 random bytes and fsync it and its directory.
 * FV_E_CONFLICT if it exists, FV_E_INVALID if inside data_dir, FV_E_IO. */
FV_MUST_CHECK int fv_crypto_kek_file_create(const char *path, const char *data_dir,
                                            struct fv_error *reterr);

/*
 * pkcs11 provider: an AES-256 secret-key object (CKA_TOKEN, CKA_SENSITIVE,
 * not CKA_EXTRACTABLE) labelled key_label on the token labelled
 * token_label, loaded from module (a PKCS#11 .so path) through p11-kit.
 * Wrap and unwrap run inside the token with CKM_AES_GCM (PKCS#11 v2.40
 * 2.12), a random 96-bit IV and the ad; blob = 0x02 || iv || ciphertext || tag.
 * The PIN is read from pin (borrowed, not kept after login... the provider
 * keeps it in a secret to log in again after the token comes back).
 * Errors name the missing part in reterr: module not loadable, token not
 * found, login failed, key not found (FV_E_KEY_UNAVAILABLE), more than one
 * key with the label (FV_E_INVALID). Key ID "pkcs11:" token "/" key label.
 */
FV_MUST_CHECK int fv_crypto_kek_pkcs11_open(struct fv_kek **ret, const char *module,
                                            const char *token_label, const char *key_label,
                                            const char *pin, struct fv_error *reterr);
/* Generate the AES-256 key object on the token. FV_E_CONFLICT if the label exists. */
FV_MUST_CHECK int fv_crypto_kek_pkcs11_generate(const char *module, const char *token_label,
                                                const char *key_label, const char *pin,
                                                struct fv_error *reterr);

/*
 * imported provider: a KEK whose material formvault holds (a tenant's BYOK
 * key imported through the transport key), kept in a copy of key (32
 * bytes). Same wrap format as the file provider; id is copied.
 */
FV_MUST_CHECK int fv_crypto_kek_secret_new(struct fv_kek **ret, const char *id,
                                           const struct fv_secret *key);

/* ------------------------------------------------ BYOK transport key (RSA) */

/*
 * RSA-3072 transport key for importing key material, as cloud KMSs do: the
 * importer encrypts its 32-byte key with RSAES-OAEP, SHA-256 and MGF1-SHA-256,
 * empty label (RFC 8017 7.1), e.g.
 *   openssl pkeyutl -encrypt -pubin -inkey transport.pem \
 *     -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 \
 *     -pkeyopt rsa_mgf1_md:sha256 -in kek.bin -out kek.wrapped
 * New key pair: *ret_private = the private key (PKCS#8 DER) as a secret,
 * *ret_public_pem = SubjectPublicKeyInfo PEM (caller frees with fv_free).
 * FV_E_NOMEM, FV_E_INTERNAL.
 */
FV_MUST_CHECK int fv_crypto_transport_new(struct fv_secret **ret_private, char **ret_public_pem);
/*
 * Decrypt an RSA-OAEP-SHA256 ciphertext made for the transport key into a
 * new secret; the plaintext must be exactly 32 bytes. FV_E_CORRUPT (not a
 * valid OAEP ciphertext for this key, or not 32 bytes: one code), FV_E_NOMEM,
 * FV_E_INTERNAL.
 */
FV_MUST_CHECK int fv_crypto_transport_unwrap(struct fv_secret **ret, const uint8_t *c, size_t clen,
                                             const struct fv_secret *private_der);
/* Encrypt for the public PEM (the importer's side; tests and `formvault keys wrap-for-import`). */
FV_MUST_CHECK int fv_crypto_transport_wrap(uint8_t *out, size_t outcap, size_t *ret_len,
                                           const struct fv_secret *key, const char *public_pem);

#endif
