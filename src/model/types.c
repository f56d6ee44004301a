/*
 * model/types.c: the field type table, type classes, system and reserved
 * names, link-name syntax, UTF-8 checking and calendar dates.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "model/model_int.h"

struct type_info {
    const char *name;
    int code;
};

/* Indexed by enum fv_field_type; the order must match model.h. */
static const struct type_info type_table[FV_FIELD__COUNT] = {
    [FV_FIELD_SINGLE_LINE] = {"single_line", 1},
    [FV_FIELD_MULTI_LINE] = {"multi_line", 2},
    [FV_FIELD_EMAIL] = {"email", 3},
    [FV_FIELD_RICH_TEXT] = {"rich_text", 4},
    [FV_FIELD_NUMBER] = {"number", 5},
    [FV_FIELD_DECIMAL] = {"decimal", 6},
    [FV_FIELD_PERCENT] = {"percent", 7},
    [FV_FIELD_CURRENCY] = {"currency", 8},
    [FV_FIELD_AUTONUMBER] = {"autonumber", 9},
    [FV_FIELD_DATE] = {"date", 10},
    [FV_FIELD_DATETIME] = {"datetime", 11},
    [FV_FIELD_DROPDOWN] = {"dropdown", 12},
    [FV_FIELD_RADIO] = {"radio", 13},
    [FV_FIELD_MULTI_SELECT] = {"multi_select", 14},
    [FV_FIELD_CHECKBOX] = {"checkbox", 15},
    [FV_FIELD_DECISION] = {"decision", 16},
    [FV_FIELD_URL] = {"url", 17},
    [FV_FIELD_PHONE] = {"phone", 19},
    [FV_FIELD_TIME] = {"time", 20},
    [FV_FIELD_NAME] = {"name", 29},
    [FV_FIELD_ADDRESS] = {"address", 30},
    [FV_FIELD_LOOKUP] = {"lookup", 12},
};

const char *fv_model_type_name(enum fv_field_type t)
{
    if ((unsigned)t >= FV_FIELD__COUNT)
        return "unknown";
    return type_table[t].name;
}

enum fv_field_type fv_model_type_from_name(const char *name)
{
    if (name == NULL)
        return FV_FIELD__COUNT;
    for (size_t i = 0; i < FV_FIELD__COUNT; i++)
        if (strcmp(type_table[i].name, name) == 0)
            return (enum fv_field_type)i;
    return FV_FIELD__COUNT;
}

int fv_model_type_code(const struct fv_field *f)
{
    FV_ASSERT(f != NULL && (unsigned)f->type < FV_FIELD__COUNT);
    /* Creator shows a multi lookup as a multi select (creator-api.md 5.10). */
    if (f->type == FV_FIELD_LOOKUP && f->lookup_multi)
        return 14;
    return type_table[f->type].code;
}

bool fv_model_link_name_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > FV_MODEL_LINK_MAX)
        return false;
    unsigned char c = (unsigned char)s[0];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
        return false;
    for (size_t i = 1; i < len; i++) {
        c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

static const char *const sys_names[] = {
    [FV_SYS_ID] = "ID",
    [FV_SYS_ADDED_TIME] = "Added_Time",
    [FV_SYS_MODIFIED_TIME] = "Modified_Time",
    [FV_SYS_ADDED_USER] = "Added_User",
    [FV_SYS_MODIFIED_USER] = "Modified_User",
};

enum fv_sysfield fv_model_sysfield_from_name(const char *s, size_t len)
{
    for (size_t i = 1; i < FV_ARRAY_LEN(sys_names); i++)
        if (strlen(sys_names[i]) == len && memcmp(sys_names[i], s, len) == 0)
            return (enum fv_sysfield)i;
    return FV_SYS_NONE;
}

/*
 * SQLite compares identifiers ignoring ASCII case, so reserved names are too:
 * a field 'id' would collide with the "ID" column.
 */
bool fv_model_name_reserved(const char *s)
{
    static const char *const reserved[] = {
        "ID",
        "Added_Time",
        "Modified_Time",
        "Added_User",
        "Modified_User",
        "row_version",
        "Added_User_IP_Address",
        "Modified_User_IP_Address",
    };
    for (size_t i = 0; i < FV_ARRAY_LEN(reserved); i++)
        if (strcasecmp(reserved[i], s) == 0)
            return true;
    return false;
}

bool fv_model_type_is_text(enum fv_field_type t)
{
    switch (t) {
    case FV_FIELD_SINGLE_LINE:
    case FV_FIELD_MULTI_LINE:
    case FV_FIELD_EMAIL:
    case FV_FIELD_RICH_TEXT:
    case FV_FIELD_PHONE:
    case FV_FIELD_DROPDOWN:
    case FV_FIELD_RADIO:
        return true;
    default:
        return false;
    }
}

bool fv_model_type_is_multi(enum fv_field_type t)
{
    return t == FV_FIELD_MULTI_SELECT || t == FV_FIELD_CHECKBOX;
}

bool fv_model_type_is_choice(enum fv_field_type t)
{
    return t == FV_FIELD_DROPDOWN || t == FV_FIELD_RADIO || fv_model_type_is_multi(t);
}

bool fv_model_type_is_scaled(enum fv_field_type t)
{
    return t == FV_FIELD_DECIMAL || t == FV_FIELD_PERCENT || t == FV_FIELD_CURRENCY;
}

bool fv_model_type_has_max_length(enum fv_field_type t)
{
    switch (t) {
    case FV_FIELD_SINGLE_LINE:
    case FV_FIELD_MULTI_LINE:
    case FV_FIELD_EMAIL:
    case FV_FIELD_RICH_TEXT:
    case FV_FIELD_PHONE:
    case FV_FIELD_URL:
        return true;
    default:
        return false;
    }
}

int fv_model_type_default_max_length(enum fv_field_type t)
{
    switch (t) {
    case FV_FIELD_MULTI_LINE:
    case FV_FIELD_RICH_TEXT:
        return FV_MODEL_MULTILINE_MAX;
    case FV_FIELD_SINGLE_LINE:
    case FV_FIELD_EMAIL:
    case FV_FIELD_PHONE:
    case FV_FIELD_URL:
    case FV_FIELD_DROPDOWN:
    case FV_FIELD_RADIO:
    case FV_FIELD_NAME:
    case FV_FIELD_ADDRESS:
        return FV_MODEL_TEXT_MAX;
    default:
        return 0;
    }
}

int fv_model_field_max_length(const struct fv_field *f)
{
    if (fv_model_type_has_max_length(f->type) && f->max_length > 0)
        return f->max_length;
    return fv_model_type_default_max_length(f->type);
}

bool fv_model_utf8_check(const char *s, size_t len, size_t *ret_chars, size_t *ret_bad)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, chars = 0;

    while (i < len) {
        unsigned char c = p[i];
        size_t n;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            chars++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            goto fail;
        }
        if (len - i <= n)
            goto fail;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                goto fail;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        /* 1. overlong 3- and 4-byte forms, 2. surrogates, 3. beyond U+10FFFF */
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || (cp >= 0xD800 && cp <= 0xDFFF) ||
            cp > 0x10FFFF)
            goto fail;
        i += n + 1;
        chars++;
    }
    if (ret_chars != NULL)
        *ret_chars = chars;
    return true;
fail:
    if (ret_bad != NULL)
        *ret_bad = i;
    return false;
}

/* ------------------------------------------------------------------ dates */

static const char *const month_abbr[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static const char *const date_formats[] = {"dd-MMM-yyyy", "dd-MM-yyyy", "dd.MM.yyyy",
                                           "MM-dd-yyyy",  "yyyy-MM-dd", "MMM dd,yyyy"};

bool fv_model_date_format_valid(const char *fmt)
{
    if (fmt == NULL)
        return false;
    for (size_t i = 0; i < FV_ARRAY_LEN(date_formats); i++)
        if (strcmp(fmt, date_formats[i]) == 0)
            return true;
    return false;
}

bool fv_model_date_valid(int y, int m, int d)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1)
        return false;
    int max = mdays[m - 1];
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        max = 29;
    return d <= max;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Read between min and max digits at s[*i]; false if fewer than min. */
static bool read_digits(const char *s, size_t len, size_t *i, size_t min, size_t max, int *ret)
{
    size_t n = 0;
    int v = 0;
    while (*i < len && n < max && is_digit(s[*i])) {
        v = v * 10 + (s[*i] - '0');
        (*i)++;
        n++;
    }
    if (n < min)
        return false;
    *ret = v;
    return true;
}

/* Match s against one date format; true and y/m/d set on a full match. */
static bool date_match(const char *fmt, const char *s, size_t len, int *y, int *m, int *d)
{
    size_t i = 0;
    const char *f = fmt;
    *y = *m = *d = 0;

    while (*f != '\0') {
        if (strncmp(f, "yyyy", 4) == 0) {
            if (!read_digits(s, len, &i, 4, 4, y))
                return false;
            f += 4;
        } else if (strncmp(f, "MMM", 3) == 0) {
            if (len - i < 3)
                return false;
            int found = 0;
            for (int k = 0; k < 12; k++)
                if (strncasecmp(s + i, month_abbr[k], 3) == 0)
                    found = k + 1;
            if (found == 0)
                return false;
            *m = found;
            i += 3;
            f += 3;
        } else if (strncmp(f, "MM", 2) == 0) {
            if (!read_digits(s, len, &i, 1, 2, m))
                return false;
            f += 2;
        } else if (strncmp(f, "dd", 2) == 0) {
            if (!read_digits(s, len, &i, 1, 2, d))
                return false;
            f += 2;
        } else {
            if (i >= len || s[i] != *f)
                return false;
            i++;
            /* "MMM dd,yyyy": also accept "MMM dd, yyyy" */
            if (*f == ',' && i < len && s[i] == ' ')
                i++;
            f++;
        }
    }
    return i == len;
}

int fv_model_date_parse(const char *fmt, const char *s, size_t len, int *ret_y, int *ret_m,
                        int *ret_d)
{
    int y, m, d;
    if (fmt == NULL)
        fmt = FV_MODEL_DEFAULT_DATE_FORMAT;
    /* ISO needs exactly 4-2-2 digits; formats accept 1 or 2 digit days */
    if (!(len == 10 && date_match("yyyy-MM-dd", s, len, &y, &m, &d)) &&
        !date_match(fmt, s, len, &y, &m, &d))
        return FV_E_INVALID;
    if (!fv_model_date_valid(y, m, d))
        return FV_E_INVALID;
    *ret_y = y;
    *ret_m = m;
    *ret_d = d;
    return FV_OK;
}

int fv_model_date_write(const char *fmt, int y, int m, int d, char *out, size_t cap)
{
    int rc = FV_OK;
    char tmp[8];

    if (fmt == NULL)
        fmt = FV_MODEL_DEFAULT_DATE_FORMAT;
    if (!fv_model_date_valid(y, m, d))
        return FV_E_INVALID;
    if (cap == 0)
        return FV_E_LIMIT;
    size_t o = 0;
    const char *f = fmt;
    while (*f != '\0') {
        size_t n;
        if (strncmp(f, "yyyy", 4) == 0) {
            n = (size_t)snprintf(tmp, sizeof(tmp), "%04d", y);
            f += 4;
        } else if (strncmp(f, "MMM", 3) == 0) {
            n = (size_t)snprintf(tmp, sizeof(tmp), "%s", month_abbr[m - 1]);
            f += 3;
        } else if (strncmp(f, "MM", 2) == 0) {
            n = (size_t)snprintf(tmp, sizeof(tmp), "%02d", m);
            f += 2;
        } else if (strncmp(f, "dd", 2) == 0) {
            n = (size_t)snprintf(tmp, sizeof(tmp), "%02d", d);
            f += 2;
        } else {
            tmp[0] = *f++;
            tmp[1] = '\0';
            n = 1;
        }
        if (o + n >= cap) {
            rc = FV_E_LIMIT;
            out[0] = '\0';
            return rc;
        }
        memcpy(out + o, tmp, n);
        o += n;
    }
    out[o] = '\0';
    return rc;
}
