/*
 * model/value.c: field columns, value parsing (JSON "In" and CSV text) to
 * column values, and formatting of stored columns as v2.1 "Out" JSON.
 * The storage encoding is documented in src/model/README.md.
 *
 * Error messages name the field (and part), never the value (STYLE 28).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "model/model_int.h"

#define MAX_INT_DIGITS 15    /* number: Creator's 8011 limit */
#define MAX_SCALED_DIGITS 18 /* integer + decimal digits of a scaled value */
#define MAX_LOOKUP_IDS 1000  /* IDs in one multi lookup value */
#define JSON_TEXT_MAX (1u << 20)

static const char *const url_parts[] = {"url", "title"};
static const char *const name_parts[] = {"prefix", "first_name", "last_name", "suffix"};
static const char *const address_parts[] = {"address_line_1", "address_line_2", "district_city",
                                            "state_province", "postal_code",    "country",
                                            "latitude",       "longitude"};
#define ADDR_LAT 6
#define ADDR_LON 7

static const int64_t pow10_table[19] = {1,
                                        10,
                                        100,
                                        1000,
                                        10000,
                                        100000,
                                        1000000,
                                        10000000,
                                        100000000,
                                        1000000000,
                                        10000000000,
                                        100000000000,
                                        1000000000000,
                                        10000000000000,
                                        100000000000000,
                                        1000000000000000,
                                        10000000000000000,
                                        100000000000000000,
                                        1000000000000000000};

static bool is_ascii_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ----------------------------------------------------------- sql values */

void fv_model_sqlval_release(struct fv_sqlval *v)
{
    if (v == NULL)
        return;
    fv_free(v->s);
    memset(v, 0, sizeof(*v));
    v->type = FV_SQL_NULL;
}

static int sv_text(struct fv_sqlval *v, const char *s, size_t len)
{
    char *p = fv_malloc(len + 1);
    if (p == NULL)
        return FV_E_NOMEM;
    if (len > 0)
        memcpy(p, s, len);
    p[len] = '\0';
    v->type = FV_SQL_TEXT;
    v->s = p;
    v->len = len;
    return FV_OK;
}

static void sv_int(struct fv_sqlval *v, int64_t i)
{
    v->type = FV_SQL_INT;
    v->i = i;
}

static void release_cols(struct fv_sqlval *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fv_model_sqlval_release(&out[i]);
}

/* -------------------------------------------------------------- columns */

static const char *const *field_parts(enum fv_field_type t, size_t *ret_n)
{
    switch (t) {
    case FV_FIELD_URL:
        *ret_n = FV_ARRAY_LEN(url_parts);
        return url_parts;
    case FV_FIELD_NAME:
        *ret_n = FV_ARRAY_LEN(name_parts);
        return name_parts;
    case FV_FIELD_ADDRESS:
        *ret_n = FV_ARRAY_LEN(address_parts);
        return address_parts;
    default:
        *ret_n = 0;
        return NULL;
    }
}

size_t fv_model_field_value_ncols(const struct fv_field *f)
{
    size_t n;
    (void)field_parts(f->type, &n);
    return n == 0 ? 1 : n;
}

static enum fv_sql_type field_sql_type(const struct fv_field *f)
{
    switch (f->type) {
    case FV_FIELD_NUMBER:
    case FV_FIELD_DECIMAL:
    case FV_FIELD_PERCENT:
    case FV_FIELD_CURRENCY:
    case FV_FIELD_AUTONUMBER:
    case FV_FIELD_DECISION:
        return FV_SQL_INT;
    case FV_FIELD_LOOKUP:
        return f->lookup_multi ? FV_SQL_TEXT : FV_SQL_INT;
    default:
        return FV_SQL_TEXT;
    }
}

int fv_model_field_value_column(const struct fv_field *f, size_t i, char *ret_name, size_t cap,
                                enum fv_sql_type *ret_type, const char **ret_part)
{
    size_t nparts;
    const char *const *parts = field_parts(f->type, &nparts);
    const char *part = NULL;
    int n;

    if (i >= fv_model_field_value_ncols(f))
        return FV_E_INVALID;
    if (parts != NULL) {
        part = parts[i];
        n = snprintf(ret_name, cap, "c_%s__%s", f->link_name, part);
    } else {
        n = snprintf(ret_name, cap, "c_%s", f->link_name);
    }
    if (n < 0 || (size_t)n >= cap)
        return FV_E_LIMIT;
    if (ret_type != NULL)
        *ret_type = field_sql_type(f);
    if (ret_part != NULL)
        *ret_part = part;
    return FV_OK;
}

/* Index of part name p (len bytes) of field type t, or -1. */
static int part_index(enum fv_field_type t, const char *p, size_t len)
{
    size_t n;
    const char *const *parts = field_parts(t, &n);
    for (size_t i = 0; i < n; i++)
        if (strlen(parts[i]) == len && memcmp(parts[i], p, len) == 0)
            return (int)i;
    return -1;
}

int fv_model_field_part_index(const struct fv_field *f, const char *part, size_t len)
{
    return part_index(f->type, part, len);
}

/* ---------------------------------------------------------- error helper */

static int verr(struct fv_error *e, int code, const struct fv_field *f, const char *part,
                const char *why)
{
    if (part != NULL)
        return fv_error_set(e, code, SIZE_MAX, "field '%s.%s': %s", f->link_name, part, why);
    return fv_error_set(e, code, SIZE_MAX, "field '%s': %s", f->link_name, why);
}

/* ----------------------------------------------------------- text rules */

/*
 * Check a text value: valid UTF-8, no NUL, no control characters (tab
 * allowed; multi-line text also allows CR and LF), at most max characters.
 */
static int check_text(const struct fv_field *f, const char *part, const char *s, size_t len,
                      int max, bool multiline, struct fv_error *e)
{
    size_t chars;
    if (!fv_model_utf8_check(s, len, &chars, NULL))
        return verr(e, FV_E_VALIDATION, f, part, "not valid UTF-8");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\t' || (multiline && (c == '\n' || c == '\r')))
            continue;
        if (c < 0x20 || c == 0x7f)
            return verr(e, FV_E_VALIDATION, f, part, "contains a control character");
    }
    if (max > 0 && chars > (size_t)max) {
        char why[64];
        (void)snprintf(why, sizeof(why), "longer than %d characters", max);
        return verr(e, FV_E_VALIDATION, f, part, why);
    }
    return FV_OK;
}

static bool email_local_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+/=?^_`{|}~.-", c) != NULL);
}

/* local@domain.tld, ASCII only (RFC 5321 dot-atom local part). */
static bool email_valid(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    if (at == NULL || memchr(at + 1, '@', len - (size_t)(at + 1 - s)) != NULL)
        return false;
    size_t llen = (size_t)(at - s), dlen = len - llen - 1;
    if (llen == 0 || llen > 64 || dlen == 0 || dlen > 253)
        return false;
    if (s[0] == '.' || s[llen - 1] == '.')
        return false;
    for (size_t i = 0; i < llen; i++) {
        if (!email_local_char((unsigned char)s[i]))
            return false;
        if (s[i] == '.' && i + 1 < llen && s[i + 1] == '.')
            return false;
    }
    const char *d = at + 1;
    size_t labels = 0, lab_start = 0;
    for (size_t i = 0; i <= dlen; i++) {
        if (i == dlen || d[i] == '.') {
            size_t ll = i - lab_start;
            if (ll == 0 || ll > 63 || d[lab_start] == '-' || d[i - 1] == '-')
                return false;
            labels++;
            if (i == dlen) {
                /* top-level domain: at least two letters */
                if (ll < 2)
                    return false;
                for (size_t k = lab_start; k < i; k++)
                    if (!((d[k] >= 'a' && d[k] <= 'z') || (d[k] >= 'A' && d[k] <= 'Z')))
                        return false;
            }
            lab_start = i + 1;
            continue;
        }
        unsigned char c = (unsigned char)d[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return false;
    }
    return labels >= 2;
}

/* Digits, spaces and + - . ( ) x X; at least 3 digits. */
static bool phone_valid(const char *s, size_t len)
{
    size_t digits = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9')
            digits++;
        else if (strchr(" +-.()xX", c) == NULL || c == '\0')
            return false;
    }
    return digits >= 3;
}

/* http, https or ftp URL with a host; no whitespace, quotes or angle brackets. */
static bool url_valid(const char *s, size_t len)
{
    static const char *const schemes[] = {"http://", "https://", "ftp://"};
    size_t skip = 0;
    for (size_t i = 0; i < FV_ARRAY_LEN(schemes); i++) {
        size_t n = strlen(schemes[i]);
        if (len > n && strncasecmp(s, schemes[i], n) == 0) {
            skip = n;
            break;
        }
    }
    if (skip == 0)
        return false;
    if (s[skip] == '/' || s[skip] == '?' || s[skip] == '#')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '`')
            return false;
    }
    return true;
}

/* ---------------------------------------------------------- number rules */

static size_t u64_digits(uint64_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* [-]digits, at most 15 significant digits. */
static int parse_int_text(const char *s, size_t len, int64_t *ret)
{
    size_t i = 0, sig = 0;
    bool neg = false, any = false;
    int64_t v = 0;

    if (i < len && s[i] == '-') {
        neg = true;
        i++;
    }
    for (; i < len; i++) {
        if (!is_ascii_digit(s[i]))
            return FV_E_INVALID;
        any = true;
        if (sig == 0 && s[i] == '0')
            continue;
        if (++sig > MAX_INT_DIGITS)
            return FV_E_TOO_MANY_DIGITS;
        v = v * 10 + (s[i] - '0');
    }
    if (!any)
        return FV_E_INVALID;
    *ret = neg ? -v : v;
    return FV_OK;
}

/*
 * [-]digits[.digits] scaled by 10^places. FV_E_DECIMAL_FORMAT if not numeric
 * or more decimals than places; FV_E_TOO_MANY_DIGITS beyond 15 integer digits
 * or 18 digits in all.
 */
static int parse_scaled_text(const char *s, size_t len, int places, int64_t *ret)
{
    size_t i = 0, isig = 0, nfrac = 0;
    bool neg = false, any = false;
    int64_t ip = 0, fp = 0;

    if (places < 0 || places > 9)
        return FV_E_DECIMAL_FORMAT;
    if (i < len && s[i] == '-') {
        neg = true;
        i++;
    }
    for (; i < len && is_ascii_digit(s[i]); i++) {
        any = true;
        if (isig == 0 && s[i] == '0')
            continue;
        if (++isig > MAX_INT_DIGITS)
            return FV_E_TOO_MANY_DIGITS;
        ip = ip * 10 + (s[i] - '0');
    }
    if (!any)
        return FV_E_DECIMAL_FORMAT;
    if (i < len && s[i] == '.') {
        i++;
        if (i == len)
            return FV_E_DECIMAL_FORMAT;
        for (; i < len && is_ascii_digit(s[i]); i++) {
            if (++nfrac > (size_t)places)
                return FV_E_DECIMAL_FORMAT;
            fp = fp * 10 + (s[i] - '0');
        }
    }
    if (i != len)
        return FV_E_DECIMAL_FORMAT;
    if (isig + (size_t)places > MAX_SCALED_DIGITS)
        return FV_E_TOO_MANY_DIGITS;
    int64_t v = ip * pow10_table[places] + fp * pow10_table[(size_t)places - nfrac];
    *ret = neg ? -v : v;
    return FV_OK;
}

/* A JSON real as shortest plain decimal text (no exponent) in buf. */
static int real_to_text(double d, char *buf, size_t cap)
{
    if (!isfinite(d))
        return FV_E_DECIMAL_FORMAT;
    if (fabs(d) >= 1e15)
        return FV_E_TOO_MANY_DIGITS;
    int n = snprintf(buf, cap, "%.15g", d);
    if (n < 0 || (size_t)n >= cap)
        return FV_E_DECIMAL_FORMAT;
    if (strchr(buf, 'e') != NULL) {
        /* tiny magnitudes: print fixed and drop trailing zeros */
        n = snprintf(buf, cap, "%.17f", d);
        if (n < 0 || (size_t)n >= cap)
            return FV_E_DECIMAL_FORMAT;
        while (n > 1 && buf[n - 1] == '0')
            buf[--n] = '\0';
        if (n > 1 && buf[n - 1] == '.')
            buf[--n] = '\0';
    }
    return FV_OK;
}

static int number_code_err(int rc, const struct fv_field *f, struct fv_error *e)
{
    if (rc == FV_E_TOO_MANY_DIGITS)
        return verr(e, rc, f, NULL, "too many digits");
    if (rc == FV_E_DECIMAL_FORMAT) {
        char why[80];
        (void)snprintf(why, sizeof(why), "not a number with at most %d decimal places",
                       f->decimal_places);
        return verr(e, rc, f, NULL, why);
    }
    return verr(e, FV_E_VALIDATION, f, NULL, "not a whole number");
}

/* Format a scaled integer with exactly places decimals into buf. */
static void format_scaled(int64_t v, int places, char *buf, size_t cap)
{
    uint64_t a = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    if (places <= 0 || places > 9) {
        (void)snprintf(buf, cap, "%s%llu", v < 0 ? "-" : "", (unsigned long long)a);
        return;
    }
    uint64_t p = (uint64_t)pow10_table[places];
    (void)snprintf(buf, cap, "%s%llu.%0*llu", v < 0 ? "-" : "", (unsigned long long)(a / p), places,
                   (unsigned long long)(a % p));
}

/* ---------------------------------------------------------- time rules */

/* H:MM or HH:MM, optional :SS; 24-hour clock. */
static bool parse_time(const char *s, size_t len, int *h, int *m, int *sec)
{
    size_t i = 0;
    int v[3] = {0, 0, 0};
    int parts = 0;
    while (parts < 3) {
        size_t start = i;
        int x = 0;
        while (i < len && is_ascii_digit(s[i]) && i - start < 2)
            x = x * 10 + (s[i++] - '0');
        size_t nd = i - start;
        if (nd == 0 || (parts > 0 && nd != 2))
            return false;
        v[parts++] = x;
        if (i == len)
            break;
        if (s[i] != ':')
            return false;
        i++;
    }
    if (i != len || parts < 2)
        return false;
    if (v[0] > 23 || v[1] > 59 || v[2] > 59)
        return false;
    *h = v[0];
    *m = v[1];
    *sec = v[2];
    return true;
}

static const char *app_date_format(const struct fv_app *app)
{
    if (app == NULL || app->date_format == NULL)
        return FV_MODEL_DEFAULT_DATE_FORMAT;
    return app->date_format;
}

/*
 * Date-time: ISO "YYYY-MM-DDTHH:MM:SS" (optional Z) or with a space, or the
 * app date format + " HH:mm[:ss]".
 */
static bool parse_datetime(const char *fmt, const char *s, size_t len, int dt[6])
{
    size_t tlen;
    if (len >= 16 && (s[10] == 'T' || s[10] == ' ') &&
        fv_model_date_parse("yyyy-MM-dd", s, 10, &dt[0], &dt[1], &dt[2]) == FV_OK) {
        tlen = len - 11;
        if (s[10] == 'T' && s[len - 1] == 'Z')
            tlen--;
        return parse_time(s + 11, tlen, &dt[3], &dt[4], &dt[5]);
    }
    const char *sp = NULL;
    for (size_t i = len; i > 0; i--)
        if (s[i - 1] == ' ') {
            sp = s + i - 1;
            break;
        }
    if (sp == NULL)
        return false;
    size_t dlen = (size_t)(sp - s);
    if (fv_model_date_parse(fmt, s, dlen, &dt[0], &dt[1], &dt[2]) != FV_OK)
        return false;
    return parse_time(sp + 1, len - dlen - 1, &dt[3], &dt[4], &dt[5]);
}

/* --------------------------------------------------------- json helpers */

/*
 * jansson reports most allocation failures as json_error_out_of_memory, but
 * a failure in its lexer setup returns NULL with the error text left empty.
 */
static bool jansson_oom(const json_error_t *jerr)
{
    return json_error_code(jerr) == json_error_out_of_memory || jerr->text[0] == '\0';
}

static int json_escape_append(struct fv_buf *b, const char *s, size_t len)
{
    int rc = fv_buf_append(b, "\"", 1);
    for (size_t i = 0; rc == FV_OK && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = fv_buf_append(b, esc, 2);
        } else if (c < 0x20) {
            rc = fv_buf_appendf(b, "\\u%04x", c);
        } else {
            rc = fv_buf_append(b, &s[i], 1);
        }
    }
    if (rc == FV_OK)
        rc = fv_buf_append(b, "\"", 1);
    return rc;
}

static int buf_to_text(struct fv_buf *b, struct fv_sqlval *v)
{
    size_t len;
    char *p = fv_buf_detach(b, &len);
    if (p == NULL)
        return FV_E_NOMEM;
    v->type = FV_SQL_TEXT;
    v->s = p;
    v->len = len;
    return FV_OK;
}

/* ---------------------------------------------------------------- parse */

static bool is_choice(const struct fv_field *f, const char *s, size_t len)
{
    for (size_t i = 0; i < f->n_choices; i++)
        if (strlen(f->choices[i]) == len && memcmp(f->choices[i], s, len) == 0)
            return true;
    return false;
}

/* A lookup record ID: 1..INT64_MAX as digits. */
static bool parse_record_id(const char *s, size_t len, int64_t *ret)
{
    uint64_t v;
    if (len == 0 || len > 19)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_ascii_digit(s[i]))
            return false;
    if (fv_parse_u64(s, len, &v) != FV_OK || v == 0 || v > (uint64_t)INT64_MAX)
        return false;
    *ret = (int64_t)v;
    return true;
}

static bool json_record_id(const json_t *j, int64_t *ret)
{
    if (json_is_integer(j)) {
        json_int_t v = json_integer_value(j);
        if (v <= 0)
            return false;
        *ret = (int64_t)v;
        return true;
    }
    if (json_is_string(j))
        return parse_record_id(json_string_value(j), json_string_length(j), ret);
    if (json_is_object(j)) {
        const char *key;
        json_t *val;
        json_t *id = NULL;
        json_object_foreach((json_t *)j, key, val)
        {
            if (strcmp(key, "ID") == 0)
                id = val;
            else if (strcmp(key, "zc_display_value") != 0)
                return false;
        }
        return id != NULL && !json_is_object(id) && json_record_id(id, ret);
    }
    return false;
}

/*
 * A scalar value given as text (JSON string or CSV cell), for every type
 * with one column except multi-value types.
 */
static int parse_str(const struct fv_app *app, const struct fv_field *f, const char *s, size_t len,
                     struct fv_sqlval *out, struct fv_error *e)
{
    int rc;
    int64_t v;
    char buf[32];

    switch (f->type) {
    case FV_FIELD_SINGLE_LINE:
    case FV_FIELD_MULTI_LINE:
    case FV_FIELD_RICH_TEXT:
    case FV_FIELD_EMAIL:
    case FV_FIELD_PHONE:
    case FV_FIELD_DROPDOWN:
    case FV_FIELD_RADIO:
        rc = check_text(f, NULL, s, len, fv_model_field_max_length(f),
                        f->type == FV_FIELD_MULTI_LINE || f->type == FV_FIELD_RICH_TEXT, e);
        if (rc != FV_OK)
            return rc;
        if (f->type == FV_FIELD_EMAIL && !email_valid(s, len))
            return verr(e, FV_E_VALIDATION, f, NULL, "not a valid e-mail address");
        if (f->type == FV_FIELD_PHONE && !phone_valid(s, len))
            return verr(e, FV_E_VALIDATION, f, NULL, "not a valid phone number");
        if ((f->type == FV_FIELD_DROPDOWN || f->type == FV_FIELD_RADIO) && !is_choice(f, s, len))
            return verr(e, FV_E_VALIDATION, f, NULL, "not one of its choices");
        return sv_text(out, s, len);
    case FV_FIELD_NUMBER:
        rc = parse_int_text(s, len, &v);
        if (rc != FV_OK)
            return number_code_err(rc, f, e);
        sv_int(out, v);
        return FV_OK;
    case FV_FIELD_DECIMAL:
    case FV_FIELD_PERCENT:
    case FV_FIELD_CURRENCY:
        rc = parse_scaled_text(s, len, f->decimal_places, &v);
        if (rc != FV_OK)
            return number_code_err(rc, f, e);
        sv_int(out, v);
        return FV_OK;
    case FV_FIELD_DATE: {
        int y, m, d;
        if (fv_model_date_parse(app_date_format(app), s, len, &y, &m, &d) != FV_OK)
            return verr(e, FV_E_VALIDATION, f, NULL, "not a valid date");
        (void)snprintf(buf, sizeof(buf), "%04d-%02d-%02d", y, m, d);
        return sv_text(out, buf, 10);
    }
    case FV_FIELD_DATETIME: {
        int dt[6];
        if (!parse_datetime(app_date_format(app), s, len, dt))
            return verr(e, FV_E_VALIDATION, f, NULL, "not a valid date-time");
        (void)snprintf(buf, sizeof(buf), "%04d-%02d-%02d %02d:%02d:%02d", dt[0], dt[1], dt[2],
                       dt[3], dt[4], dt[5]);
        return sv_text(out, buf, 19);
    }
    case FV_FIELD_TIME: {
        int h, m, sec;
        if (!parse_time(s, len, &h, &m, &sec))
            return verr(e, FV_E_VALIDATION, f, NULL, "not a valid time");
        (void)snprintf(buf, sizeof(buf), "%02d:%02d:%02d", h, m, sec);
        return sv_text(out, buf, 8);
    }
    case FV_FIELD_DECISION:
        if ((len == 4 && strncasecmp(s, "true", 4) == 0) ||
            (len == 3 && strncasecmp(s, "yes", 3) == 0) || (len == 1 && s[0] == '1')) {
            sv_int(out, 1);
            return FV_OK;
        }
        if ((len == 5 && strncasecmp(s, "false", 5) == 0) ||
            (len == 2 && strncasecmp(s, "no", 2) == 0) || (len == 1 && s[0] == '0')) {
            sv_int(out, 0);
            return FV_OK;
        }
        return verr(e, FV_E_VALIDATION, f, NULL, "not true or false");
    case FV_FIELD_LOOKUP:
        if (!parse_record_id(s, len, &v))
            return verr(e, FV_E_VALIDATION, f, NULL, "not a record ID");
        sv_int(out, v);
        return FV_OK;
    default:
        return verr(e, FV_E_VALIDATION, f, NULL, "value has the wrong type");
    }
}

/* Multi select / checkbox: array of choices (or one choice) as JSON text. */
static int parse_multi(const struct fv_field *f, const json_t *in, struct fv_sqlval *out,
                       struct fv_error *e)
{
    struct fv_buf b;
    int rc = FV_OK;
    size_t n = 0, count;

    if (json_is_string(in))
        count = 1;
    else if (json_is_array(in))
        count = json_array_size(in);
    else
        return verr(e, FV_E_VALIDATION, f, NULL, "expected an array of choices");
    fv_buf_init(&b, JSON_TEXT_MAX);
    rc = fv_buf_append(&b, "[", 1);
    for (size_t i = 0; rc == FV_OK && i < count; i++) {
        const json_t *it = json_is_array(in) ? json_array_get(in, i) : in;
        if (!json_is_string(it)) {
            rc = verr(e, FV_E_VALIDATION, f, NULL, "expected an array of choices");
            break;
        }
        const char *s = json_string_value(it);
        size_t len = json_string_length(it);
        if (!is_choice(f, s, len)) {
            rc = verr(e, FV_E_VALIDATION, f, NULL, "not one of its choices");
            break;
        }
        /* duplicates are dropped: the value is a set (count <= 1 for a string) */
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++) {
            const json_t *o = json_array_get(in, k);
            dup = json_string_length(o) == len && memcmp(json_string_value(o), s, len) == 0;
        }
        if (dup)
            continue;
        if (n++ > 0)
            rc = fv_buf_append(&b, ",", 1);
        if (rc == FV_OK)
            rc = json_escape_append(&b, s, len);
    }
    if (rc == FV_OK && n == 0)
        goto out; /* empty set: NULL */
    if (rc == FV_OK)
        rc = fv_buf_append(&b, "]", 1);
    if (rc == FV_OK)
        rc = buf_to_text(&b, out);
out:
    fv_buf_release(&b);
    return rc;
}

/* Multi lookup: array of record IDs (or one) as JSON text "[1,2]". */
static int parse_lookup_multi(const struct fv_field *f, const json_t *in, struct fv_sqlval *out,
                              struct fv_error *e)
{
    struct fv_buf b;
    int rc = FV_OK;
    int64_t *ids = NULL;
    size_t n = 0, count = json_is_array(in) ? json_array_size(in) : 1;

    fv_buf_init(&b, JSON_TEXT_MAX);
    if (count > MAX_LOOKUP_IDS)
        return verr(e, FV_E_VALIDATION, f, NULL, "too many record IDs");
    if (count == 0)
        return FV_OK;
    ids = fv_calloc(count, sizeof(*ids));
    if (ids == NULL)
        return FV_E_NOMEM;
    for (size_t i = 0; i < count; i++) {
        const json_t *it = json_is_array(in) ? json_array_get(in, i) : in;
        int64_t id;
        if (!json_record_id(it, &id)) {
            rc = verr(e, FV_E_VALIDATION, f, NULL, "not a record ID");
            goto out;
        }
        bool dup = false;
        for (size_t k = 0; k < n && !dup; k++)
            dup = ids[k] == id;
        if (!dup)
            ids[n++] = id;
    }
    rc = fv_buf_append(&b, "[", 1);
    for (size_t i = 0; rc == FV_OK && i < n; i++)
        rc = fv_buf_appendf(&b, "%s%lld", i > 0 ? "," : "", (long long)ids[i]);
    if (rc == FV_OK)
        rc = fv_buf_append(&b, "]", 1);
    if (rc == FV_OK)
        rc = buf_to_text(&b, out);
out:
    fv_free(ids);
    fv_buf_release(&b);
    return rc;
}

/* Latitude/longitude: decimal text within +-limit. */
static bool coord_valid(const char *s, size_t len, double limit)
{
    size_t i = 0, digits = 0;
    char buf[40];
    if (len == 0 || len >= sizeof(buf))
        return false;
    if (s[0] == '-' || s[0] == '+')
        i++;
    for (; i < len && is_ascii_digit(s[i]); i++)
        digits++;
    if (digits == 0)
        return false;
    if (i < len && s[i] == '.') {
        i++;
        size_t fd = 0;
        for (; i < len && is_ascii_digit(s[i]); i++)
            fd++;
        if (fd == 0)
            return false;
    }
    if (i != len)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    double d = strtod(buf, NULL);
    return fabs(d) <= limit;
}

/* One composite part from a JSON value (string, or number for coordinates). */
static int parse_part(const struct fv_field *f, size_t idx, const json_t *v, struct fv_sqlval *out,
                      struct fv_error *e)
{
    size_t nparts;
    const char *const *parts = field_parts(f->type, &nparts);
    const char *part = parts[idx];
    const char *s;
    size_t len;
    char num[40];
    int rc;

    if (json_is_null(v))
        return FV_OK;
    bool coord = f->type == FV_FIELD_ADDRESS && (idx == ADDR_LAT || idx == ADDR_LON);
    if (coord && json_is_number(v)) {
        rc = real_to_text(json_number_value(v), num, sizeof(num));
        if (rc != FV_OK)
            return verr(e, FV_E_VALIDATION, f, part, "not a valid coordinate");
        s = num;
        len = strlen(num);
    } else if (json_is_string(v)) {
        s = json_string_value(v);
        len = json_string_length(v);
    } else {
        return verr(e, FV_E_VALIDATION, f, part, "expected a string");
    }
    if (len == 0)
        return FV_OK;
    int max =
        f->type == FV_FIELD_URL && idx == 0 ? fv_model_field_max_length(f) : FV_MODEL_TEXT_MAX;
    rc = check_text(f, part, s, len, max, false, e);
    if (rc != FV_OK)
        return rc;
    if (f->type == FV_FIELD_URL && idx == 0 && !url_valid(s, len))
        return verr(e, FV_E_VALIDATION, f, part, "not a valid http, https or ftp URL");
    if (coord && !coord_valid(s, len, idx == ADDR_LAT ? 90.0 : 180.0))
        return verr(e, FV_E_VALIDATION, f, part, "not a valid coordinate");
    return sv_text(out, s, len);
}

static int parse_composite(const struct fv_field *f, const json_t *in, struct fv_sqlval *out,
                           struct fv_error *e)
{
    size_t nparts;
    (void)field_parts(f->type, &nparts);
    int rc = FV_OK;

    if (json_is_string(in)) {
        const char *s = json_string_value(in);
        size_t len = json_string_length(in);
        if (f->type != FV_FIELD_NAME) {
            /* url: the URL; address: the first line */
            return parse_part(f, 0, in, &out[0], e);
        }
        /* name: "First Middle Last" -> first_name "First Middle", last_name "Last" */
        const char *sp = NULL;
        for (size_t i = len; i > 0 && sp == NULL; i--)
            if (s[i - 1] == ' ')
                sp = s + i - 1;
        json_t *a = NULL, *b = NULL;
        if (sp == NULL) {
            return parse_part(f, 1, in, &out[1], e);
        }
        a = json_stringn(s, (size_t)(sp - s));
        b = json_stringn(sp + 1, len - (size_t)(sp - s) - 1);
        if (a == NULL || b == NULL)
            rc = FV_E_NOMEM;
        if (rc == FV_OK)
            rc = parse_part(f, 1, a, &out[1], e);
        if (rc == FV_OK)
            rc = parse_part(f, 2, b, &out[2], e);
        json_decref(a);
        json_decref(b);
        return rc;
    }
    if (!json_is_object(in))
        return verr(e, FV_E_VALIDATION, f, NULL, "expected an object");

    const char *key;
    json_t *val;
    const json_t *url_value = NULL;
    bool have_url = false;
    json_object_foreach((json_t *)in, key, val)
    {
        int idx = part_index(f->type, key, strlen(key));
        if (idx < 0) {
            /* output-only keys are accepted so a read record can be written back */
            if (f->type == FV_FIELD_URL && strcmp(key, "value") == 0) {
                url_value = val;
                continue;
            }
            if (f->type != FV_FIELD_URL && strcmp(key, "zc_display_value") == 0)
                continue;
            /* the key is quoted only when it is a name: messages stay short ASCII */
            if (!fv_model_link_name_valid(key, strlen(key)))
                return verr(e, FV_E_VALIDATION, f, NULL, "unknown part");
            return fv_error_set(e, FV_E_VALIDATION, SIZE_MAX, "field '%s': unknown part '%s'",
                                f->link_name, key);
        }
        if (f->type == FV_FIELD_URL && idx == 0)
            have_url = true;
        rc = parse_part(f, (size_t)idx, val, &out[idx], e);
        if (rc != FV_OK)
            return rc;
    }
    if (f->type == FV_FIELD_URL && !have_url && url_value != NULL)
        rc = parse_part(f, 0, url_value, &out[0], e);
    if (rc == FV_OK && f->type == FV_FIELD_URL && out[0].type == FV_SQL_NULL &&
        out[1].type != FV_SQL_NULL)
        rc = verr(e, FV_E_VALIDATION, f, NULL, "a title needs a URL");
    return rc;
}

int fv_model_value_parse(const struct fv_app *app, const struct fv_field *f, const json_t *in,
                         struct fv_sqlval *out, struct fv_error *reterr)
{
    size_t ncols = fv_model_field_value_ncols(f);
    int rc = FV_OK;
    char buf[48];

    for (size_t i = 0; i < ncols; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        out[i].type = FV_SQL_NULL;
    }
    if (f->type == FV_FIELD_AUTONUMBER)
        return verr(reterr, FV_E_VALIDATION, f, NULL, "autonumber fields are not settable");
    if (in == NULL || json_is_null(in) || (json_is_string(in) && json_string_length(in) == 0))
        return FV_OK;

    switch (f->type) {
    case FV_FIELD_MULTI_SELECT:
    case FV_FIELD_CHECKBOX:
        rc = parse_multi(f, in, out, reterr);
        break;
    case FV_FIELD_URL:
    case FV_FIELD_NAME:
    case FV_FIELD_ADDRESS:
        rc = parse_composite(f, in, out, reterr);
        break;
    case FV_FIELD_LOOKUP:
        if (f->lookup_multi) {
            rc = parse_lookup_multi(f, in, out, reterr);
        } else {
            int64_t id;
            if (json_is_array(in) || !json_record_id(in, &id))
                rc = verr(reterr, FV_E_VALIDATION, f, NULL, "not a record ID");
            else
                sv_int(&out[0], id);
        }
        break;
    case FV_FIELD_DECISION:
        if (json_is_boolean(in)) {
            sv_int(&out[0], json_is_true(in) ? 1 : 0);
        } else if (json_is_integer(in) &&
                   (json_integer_value(in) == 0 || json_integer_value(in) == 1)) {
            sv_int(&out[0], json_integer_value(in));
        } else if (json_is_string(in)) {
            rc = parse_str(app, f, json_string_value(in), json_string_length(in), out, reterr);
        } else {
            rc = verr(reterr, FV_E_VALIDATION, f, NULL, "not true or false");
        }
        break;
    case FV_FIELD_NUMBER:
        if (json_is_integer(in)) {
            json_int_t v = json_integer_value(in);
            uint64_t a = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
            if (u64_digits(a) > MAX_INT_DIGITS)
                rc = number_code_err(FV_E_TOO_MANY_DIGITS, f, reterr);
            else
                sv_int(&out[0], (int64_t)v);
        } else if (json_is_real(in)) {
            double d = json_real_value(in);
            if (!isfinite(d) || d != floor(d))
                rc = number_code_err(FV_E_INVALID, f, reterr);
            else if (fabs(d) >= 1e15)
                rc = number_code_err(FV_E_TOO_MANY_DIGITS, f, reterr);
            else
                sv_int(&out[0], (int64_t)d);
        } else if (json_is_string(in)) {
            rc = parse_str(app, f, json_string_value(in), json_string_length(in), out, reterr);
        } else {
            rc = number_code_err(FV_E_INVALID, f, reterr);
        }
        break;
    case FV_FIELD_DECIMAL:
    case FV_FIELD_PERCENT:
    case FV_FIELD_CURRENCY:
        if (json_is_integer(in)) {
            (void)snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(in));
            rc = parse_str(app, f, buf, strlen(buf), out, reterr);
        } else if (json_is_real(in)) {
            rc = real_to_text(json_real_value(in), buf, sizeof(buf));
            if (rc != FV_OK)
                rc = number_code_err(rc, f, reterr);
            else
                rc = parse_str(app, f, buf, strlen(buf), out, reterr);
        } else if (json_is_string(in)) {
            rc = parse_str(app, f, json_string_value(in), json_string_length(in), out, reterr);
        } else {
            rc = number_code_err(FV_E_DECIMAL_FORMAT, f, reterr);
        }
        break;
    case FV_FIELD_SINGLE_LINE:
    case FV_FIELD_MULTI_LINE:
    case FV_FIELD_PHONE:
        /* numbers are accepted as their decimal text (e.g. a patient number) */
        if (json_is_integer(in)) {
            (void)snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(in));
            rc = parse_str(app, f, buf, strlen(buf), out, reterr);
            break;
        }
        /* fall through */
    default:
        if (!json_is_string(in))
            rc = verr(reterr, FV_E_VALIDATION, f, NULL, "expected a string");
        else
            rc = parse_str(app, f, json_string_value(in), json_string_length(in), out, reterr);
        break;
    }
    if (rc != FV_OK)
        release_cols(out, ncols);
    return rc;
}

/* Split CSV text on commas into a JSON array of trimmed strings. */
static json_t *split_commas(const char *s, size_t len)
{
    json_t *arr = json_array();
    size_t start = 0;
    if (arr == NULL)
        return NULL;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != ',')
            continue;
        size_t a = start, b = i;
        while (a < b && s[a] == ' ')
            a++;
        while (b > a && s[b - 1] == ' ')
            b--;
        if (b > a && json_array_append_new(arr, json_stringn_nocheck(s + a, b - a)) != 0) {
            json_decref(arr);
            return NULL;
        }
        start = i + 1;
    }
    return arr;
}

int fv_model_value_parse_text(const struct fv_app *app, const struct fv_field *f, const char *text,
                              size_t len, struct fv_sqlval *out, struct fv_error *reterr)
{
    size_t ncols = fv_model_field_value_ncols(f);
    json_t *j = NULL;
    int rc = FV_OK;

    for (size_t i = 0; i < ncols; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        out[i].type = FV_SQL_NULL;
    }
    if (f->type == FV_FIELD_AUTONUMBER)
        return verr(reterr, FV_E_VALIDATION, f, NULL, "autonumber fields are not settable");
    if (len == 0)
        return FV_OK;
    if (!fv_model_utf8_check(text, len, NULL, NULL))
        return verr(reterr, FV_E_VALIDATION, f, NULL, "not valid UTF-8");

    bool structured = fv_model_type_is_multi(f->type) || f->type == FV_FIELD_URL ||
                      f->type == FV_FIELD_NAME || f->type == FV_FIELD_ADDRESS ||
                      (f->type == FV_FIELD_LOOKUP && f->lookup_multi);
    if (!structured)
        return parse_str(app, f, text, len, out, reterr);

    if (text[0] == '[' || text[0] == '{') {
        json_error_t jerr;
        j = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        if (j == NULL) {
            if (jansson_oom(&jerr))
                return FV_E_NOMEM;
            return verr(reterr, FV_E_VALIDATION, f, NULL, "cell is not valid JSON");
        }
    } else if ((fv_model_type_is_multi(f->type) && !is_choice(f, text, len)) ||
               f->type == FV_FIELD_LOOKUP) {
        j = split_commas(text, len);
    } else {
        j = json_stringn_nocheck(text, len);
    }
    if (j == NULL)
        return FV_E_NOMEM;
    rc = fv_model_value_parse(app, f, j, out, reterr);
    json_decref(j);
    return rc;
}

/* --------------------------------------------------------------- format */

static json_t *col_string(const struct fv_sqlval *v)
{
    char buf[32];
    switch (v->type) {
    case FV_SQL_TEXT:
        /* stored text was validated on write; a corrupt cell is shown empty */
        if (v->s == NULL || !fv_model_utf8_check(v->s, v->len, NULL, NULL))
            return json_string("");
        return json_stringn(v->s, v->len);
    case FV_SQL_INT:
        (void)snprintf(buf, sizeof(buf), "%lld", (long long)v->i);
        return json_string(buf);
    case FV_SQL_REAL:
        (void)snprintf(buf, sizeof(buf), "%.15g", v->r);
        return json_string(buf);
    default:
        return json_string("");
    }
}

static bool col_int(const struct fv_sqlval *v, int64_t *ret)
{
    if (v->type == FV_SQL_INT) {
        *ret = v->i;
        return true;
    }
    if (v->type == FV_SQL_TEXT && v->s != NULL)
        return fv_parse_i64(v->s, v->len, ret) == FV_OK;
    return false;
}

static int obj_set(json_t *o, const char *key, json_t *v)
{
    if (v == NULL)
        return FV_E_NOMEM;
    return json_object_set_new(o, key, v) == 0 ? FV_OK : FV_E_NOMEM;
}

int fv_model_datetime_format(const struct fv_app *app, const char *iso, char *out, size_t cap)
{
    int dt[6];
    size_t len = iso != NULL ? strlen(iso) : 0;
    if (len != 19 || iso[10] != ' ' ||
        fv_model_date_parse("yyyy-MM-dd", iso, 10, &dt[0], &dt[1], &dt[2]) != FV_OK ||
        !parse_time(iso + 11, 8, &dt[3], &dt[4], &dt[5]))
        return FV_E_INVALID;
    int rc = fv_model_date_write(app_date_format(app), dt[0], dt[1], dt[2], out, cap);
    if (rc != FV_OK)
        return rc;
    size_t o = strlen(out);
    int n = snprintf(out + o, cap - o, " %02d:%02d:%02d", dt[3], dt[4], dt[5]);
    if (n < 0 || (size_t)n >= cap - o) {
        out[0] = '\0';
        return FV_E_LIMIT;
    }
    return FV_OK;
}

/* Composite output: the parts as strings plus zc_display_value. */
static json_t *format_composite(const struct fv_field *f, const struct fv_sqlval *cols)
{
    size_t nparts;
    const char *const *parts = field_parts(f->type, &nparts);
    json_t *o = json_object();
    struct fv_buf disp;
    int rc = FV_OK;
    const char *sep = f->type == FV_FIELD_NAME ? " " : ", ";

    fv_buf_init(&disp, JSON_TEXT_MAX);
    if (o == NULL)
        return NULL;
    if (f->type == FV_FIELD_URL) {
        rc = obj_set(o, "value", col_string(&cols[0]));
        if (rc == FV_OK)
            rc = obj_set(o, "url", col_string(&cols[0]));
        if (rc == FV_OK)
            rc = obj_set(o, "title", col_string(&cols[1]));
        goto out;
    }
    rc = fv_buf_append(&disp, "", 0);
    for (size_t i = 0; rc == FV_OK && i < nparts; i++) {
        rc = obj_set(o, parts[i], col_string(&cols[i]));
        /* the display value leaves out the coordinates */
        if (rc != FV_OK || cols[i].type != FV_SQL_TEXT || cols[i].s == NULL || cols[i].len == 0 ||
            !fv_model_utf8_check(cols[i].s, cols[i].len, NULL, NULL) ||
            (f->type == FV_FIELD_ADDRESS && (i == ADDR_LAT || i == ADDR_LON)))
            continue;
        if (disp.len > 0)
            rc = fv_buf_append_cstr(&disp, sep);
        if (rc == FV_OK)
            rc = fv_buf_append(&disp, cols[i].s, cols[i].len);
    }
    if (rc == FV_OK)
        rc = obj_set(o, "zc_display_value", json_stringn(disp.p != NULL ? disp.p : "", disp.len));
out:
    fv_buf_release(&disp);
    if (rc != FV_OK) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *lookup_item(int64_t id, const char *display)
{
    char buf[32];
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    (void)snprintf(buf, sizeof(buf), "%lld", (long long)id);
    if (obj_set(o, "ID", json_string(buf)) != FV_OK ||
        obj_set(
            o, "zc_display_value",
            json_string(display != NULL && fv_model_utf8_check(display, strlen(display), NULL, NULL)
                            ? display
                            : "")) != FV_OK) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *format_lookup_multi(const struct fv_sqlval *col, const char *display_text)
{
    json_t *out = json_array();
    json_t *ids = NULL, *disp = NULL;
    if (out == NULL)
        return NULL;
    if (col->type != FV_SQL_TEXT || col->s == NULL)
        return out;
    ids = json_loadb(col->s, col->len, 0, NULL);
    if (!json_is_array(ids))
        goto out; /* corrupt column: shown empty */
    if (display_text != NULL)
        disp = json_loads(display_text, JSON_DECODE_ANY, NULL);
    bool use_disp = json_is_array(disp) && json_array_size(disp) == json_array_size(ids);
    for (size_t i = 0; i < json_array_size(ids); i++) {
        json_t *id = json_array_get(ids, i);
        json_t *d = use_disp ? json_array_get(disp, i) : NULL;
        if (!json_is_integer(id))
            continue;
        json_t *item =
            lookup_item(json_integer_value(id), json_is_string(d) ? json_string_value(d) : "");
        if (item == NULL || json_array_append_new(out, item) != 0) {
            json_decref(out);
            out = NULL;
            break;
        }
    }
out:
    json_decref(ids);
    json_decref(disp);
    return out;
}

json_t *fv_model_value_format(const struct fv_app *app, const struct fv_field *f,
                              const struct fv_sqlval *cols, const char *lookup_display_text)
{
    char buf[64];
    int64_t v;
    const struct fv_sqlval *c = &cols[0];

    switch (f->type) {
    case FV_FIELD_URL:
    case FV_FIELD_NAME:
    case FV_FIELD_ADDRESS:
        return format_composite(f, cols);
    case FV_FIELD_DECISION:
        return json_boolean(col_int(c, &v) && v != 0);
    case FV_FIELD_MULTI_SELECT:
    case FV_FIELD_CHECKBOX: {
        json_t *arr = NULL;
        if (c->type == FV_SQL_TEXT && c->s != NULL) {
            json_error_t jerr;
            arr = json_loadb(c->s, c->len, 0, &jerr);
            if (arr == NULL && jansson_oom(&jerr))
                return NULL;
        }
        bool ok = json_is_array(arr);
        for (size_t i = 0; ok && i < json_array_size(arr); i++)
            ok = json_is_string(json_array_get(arr, i));
        if (!ok) {
            json_decref(arr);
            arr = json_array();
        }
        return arr;
    }
    case FV_FIELD_LOOKUP:
        if (f->lookup_multi)
            return format_lookup_multi(c, lookup_display_text);
        if (!col_int(c, &v))
            return json_string("");
        return lookup_item(v, lookup_display_text);
    case FV_FIELD_NUMBER:
        if (!col_int(c, &v))
            return json_string("");
        (void)snprintf(buf, sizeof(buf), "%lld", (long long)v);
        return json_string(buf);
    case FV_FIELD_DECIMAL:
    case FV_FIELD_PERCENT:
    case FV_FIELD_CURRENCY:
        if (!col_int(c, &v))
            return json_string("");
        format_scaled(v, f->decimal_places, buf, sizeof(buf));
        return json_string(buf);
    case FV_FIELD_AUTONUMBER:
        if (!col_int(c, &v))
            return json_string("");
        (void)snprintf(buf, sizeof(buf), "%lld", (long long)v);
        if (f->autonumber_prefix != NULL) {
            struct fv_buf b;
            json_t *r = NULL;
            fv_buf_init(&b, 256);
            if (fv_buf_append_cstr(&b, f->autonumber_prefix) == FV_OK &&
                fv_buf_append_cstr(&b, buf) == FV_OK)
                r = json_stringn(b.p, b.len);
            fv_buf_release(&b);
            return r;
        }
        return json_string(buf);
    case FV_FIELD_DATE: {
        int y, m, d;
        if (c->type != FV_SQL_TEXT || c->s == NULL)
            return json_string("");
        if (fv_model_date_parse("yyyy-MM-dd", c->s, c->len, &y, &m, &d) != FV_OK ||
            fv_model_date_write(app_date_format(app), y, m, d, buf, sizeof(buf)) != FV_OK)
            return col_string(c); /* not ISO: shown as stored */
        return json_string(buf);
    }
    case FV_FIELD_DATETIME:
        if (c->type != FV_SQL_TEXT || c->s == NULL)
            return json_string("");
        if (fv_model_datetime_format(app, c->s, buf, sizeof(buf)) != FV_OK)
            return col_string(c);
        return json_string(buf);
    default:
        return col_string(c);
    }
}
