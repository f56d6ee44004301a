/* api/token.c: creating API tokens for the CLI (`formvault token create`). */
#include <string.h>

#include "api/api_int.h"

int fv_api_token_create(struct fv_store *s, const char *tenant, const char *scopes, int64_t ttl_s,
                        const char *label, char *ret_token, size_t cap, struct fv_error *reterr)
{
    struct fv_store_tenant_info info;
    struct fv_store_token tok = {0};
    struct fv_buf canon;
    uint8_t hash[FV_AUTH_TOKEN_HASH_BYTES];
    char text[FV_AUTH_TOKEN_CHARS + 1];
    unsigned set = 0;
    int64_t id = 0;
    int rc;
    fv_buf_init(&canon, sizeof(tok.scopes) - 1);
    if (ttl_s < 0)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "expiry must not be negative");
    if ((rc = fv_auth_scopes_parse(scopes, &set, reterr)) != FV_OK)
        return rc;
    rc = fv_store_tenant_find(s, tenant, &info);
    if (rc == FV_E_NO_OWNER)
        return fv_error_set(reterr, rc, SIZE_MAX, "no tenant '%.64s'", tenant);
    if (rc != FV_OK)
        return fv_error_set(reterr, rc, SIZE_MAX, "cannot look up tenant '%.64s'", tenant);
    if ((rc = fv_auth_scopes_format(set, &canon)) != FV_OK)
        goto out;
    (void)fv_strlcpy(tok.scopes, canon.p ? canon.p : "", sizeof(tok.scopes));
    tok.tenant_id = info.id;
    tok.created_ms = fv_time_now_ms();
    tok.expires_ms = ttl_s ? tok.created_ms + ttl_s * 1000 : 0;
    (void)fv_strlcpy(tok.label, label ? label : "", sizeof(tok.label));
    if ((rc = fv_auth_token_generate(text, sizeof(text), hash)) != FV_OK)
        goto out;
    if ((rc = fv_store_token_insert(s, &tok, hash, &id)) != FV_OK) {
        if (rc == FV_E_KEY_UNAVAILABLE)
            (void)fv_error_set(reterr, rc, SIZE_MAX,
                               "tenant '%.64s' is shredded: its keys are destroyed", tenant);
        else
            (void)fv_error_set(reterr, rc, SIZE_MAX, "cannot store the token");
        goto out;
    }
    rc = fv_strlcpy(ret_token, text, cap);
out:
    fv_wipe(text, sizeof(text));
    fv_wipe(hash, sizeof(hash));
    fv_buf_release(&canon);
    return rc;
}
