/*
 * auth: API tokens and Creator OAuth scopes (creator-api.md section 2).
 *
 * A token is "fvt_" followed by 43 base64url characters encoding 32 random
 * bytes. Only its SHA-256 digest is stored (catalog tokens.hash); the digest
 * is compared in constant time. Tokens carry a set of scopes, are bound to
 * one tenant and may expire. Depends on core and GnuTLS (SHA-256).
 * Thread-safety: every function is reentrant.
 */
#ifndef FV_AUTH_H
#define FV_AUTH_H

#include "core/core.h"

#define FV_AUTH_TOKEN_PREFIX "fvt_"
#define FV_AUTH_TOKEN_RANDOM_BYTES 32
#define FV_AUTH_TOKEN_CHARS (4 + 43) /* prefix + base64url without padding */
#define FV_AUTH_TOKEN_HASH_BYTES 32
_Static_assert(FV_AUTH_TOKEN_RANDOM_BYTES * 4 / 3 + 1 == 43, "token length");

/* Creator scopes, one bit each. */
enum fv_auth_scope {
    FV_SCOPE_FORM_CREATE = 1u << 0,    /* ZohoCreator.form.CREATE */
    FV_SCOPE_REPORT_READ = 1u << 1,    /* ZohoCreator.report.READ */
    FV_SCOPE_REPORT_UPDATE = 1u << 2,  /* ZohoCreator.report.UPDATE */
    FV_SCOPE_REPORT_DELETE = 1u << 3,  /* ZohoCreator.report.DELETE */
    FV_SCOPE_REPORT_CREATE = 1u << 4,  /* ZohoCreator.report.CREATE (file upload) */
    FV_SCOPE_META_FORM_READ = 1u << 5, /* ZohoCreator.meta.form.READ */
    FV_SCOPE_META_APP_READ = 1u << 6,  /* ZohoCreator.meta.application.READ */
    FV_SCOPE_DASHBOARD_READ = 1u << 7, /* ZohoCreator.dashboard.READ */
    FV_SCOPE_BULK_CREATE = 1u << 8,    /* ZohoCreator.bulk.CREATE */
    FV_SCOPE_BULK_READ = 1u << 9,      /* ZohoCreator.bulk.READ */
};
#define FV_SCOPE_ALL 0x3ffu

/*
 * Generate a new random token into ret_token (cap >= FV_AUTH_TOKEN_CHARS + 1)
 * and its digest into ret_hash. Returns FV_OK or FV_E_LIMIT (cap too small).
 * The caller wipes ret_token when done with it.
 */
FV_MUST_CHECK int fv_auth_token_generate(char *ret_token, size_t cap,
                                         uint8_t ret_hash[FV_AUTH_TOKEN_HASH_BYTES]);

/*
 * SHA-256 of the token text (FIPS 180-4) into ret_hash. Rejects text that
 * does not have the token shape (prefix, length, alphabet) with FV_E_AUTH,
 * so garbage never reaches the catalog.
 */
FV_MUST_CHECK int fv_auth_token_hash(const char *token, size_t len,
                                     uint8_t ret_hash[FV_AUTH_TOKEN_HASH_BYTES]);

/*
 * Extract the token from an Authorization header value: "Zoho-oauthtoken
 * <t>" or "Bearer <t>" (scheme case-insensitive, one or more spaces).
 * Returns a view into header, or FV_E_AUTH when absent or malformed.
 */
FV_MUST_CHECK int fv_auth_header_token(const char *header, struct fv_str *ret);

/*
 * Parse a comma-separated scope list ("ZohoCreator.report.READ,..."; spaces
 * around commas ignored; "ZohoCreator.<resource>.ALL" grants every
 * operation on that resource; "all" grants everything) into a bit set.
 * Scope names are case-sensitive as in Creator. Errors: FV_E_INVALID with
 * reterr quoting the unknown scope.
 */
FV_MUST_CHECK int fv_auth_scopes_parse(const char *list, unsigned *ret_scopes,
                                       struct fv_error *reterr);

/* Canonical comma-separated list of the scopes in set, into buf. */
FV_MUST_CHECK int fv_auth_scopes_format(unsigned set, struct fv_buf *buf);

/* Name of one scope bit ("ZohoCreator.form.CREATE"), NULL if not one bit. */
const char *fv_auth_scope_name(unsigned bit);

#endif
