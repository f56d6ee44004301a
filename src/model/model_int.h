/*
 * model internals: shared between the model sources, the model unit tests and
 * fuzzers. Other modules never include this header (STYLE 1).
 */
#ifndef FV_MODEL_INT_H
#define FV_MODEL_INT_H

#include "model/model.h"

/* Limits of app definitions (docs/app-format.md, "Limits"). */
#define FV_MODEL_APP_MAX_BYTES (4u * 1024u * 1024u)
#define FV_MODEL_APP_MAX_DEPTH 16
#define FV_MODEL_MAX_FORMS 200
#define FV_MODEL_MAX_FIELDS 500
#define FV_MODEL_MAX_COLUMNS 1990 /* SQLite's 2000 per table, less system columns */
#define FV_MODEL_MAX_REPORTS 500
#define FV_MODEL_MAX_CHOICES 1000
#define FV_MODEL_NAME_MAX 255                            /* display names, choices: characters */
#define FV_MODEL_PREFIX_MAX 32                           /* autonumber prefix: characters */
#define FV_MODEL_AUTONUMBER_MAX INT64_C(999999999999999) /* 15 digits */

/* Criteria limits (model.h, fv_model_criteria_parse). */
#define FV_MODEL_CRITERIA_MAX_BYTES 4096
#define FV_MODEL_CRITERIA_MAX_DEPTH 32
#define FV_MODEL_CRITERIA_MAX_TESTS 256
#define FV_MODEL_CRITERIA_MAX_SEGS 4
/* Compiled SQL text limit (bytes). */
#define FV_MODEL_WHERE_MAX (256u * 1024u)

/* System fields usable in views, sort and criteria. */
enum fv_sysfield {
    FV_SYS_NONE = 0,
    FV_SYS_ID,
    FV_SYS_ADDED_TIME,
    FV_SYS_MODIFIED_TIME,
    FV_SYS_ADDED_USER,
    FV_SYS_MODIFIED_USER
};
/* The system field named exactly s, or FV_SYS_NONE. Column name = s. */
enum fv_sysfield fv_model_sysfield_from_name(const char *s, size_t len);
/* True if s equals a reserved name, ignoring ASCII case. */
bool fv_model_name_reserved(const char *s);

/* Index of composite part name part[0..len) of f (url/name/address), or -1. */
int fv_model_field_part_index(const struct fv_field *f, const char *part, size_t len);

/* Type classes. */
bool fv_model_type_is_text(enum fv_field_type t);   /* one TEXT column of free text */
bool fv_model_type_is_multi(enum fv_field_type t);  /* multi_select, checkbox */
bool fv_model_type_is_choice(enum fv_field_type t); /* needs choices */
bool fv_model_type_is_scaled(enum fv_field_type t); /* decimal, percent, currency */
bool fv_model_type_has_max_length(enum fv_field_type t);
int fv_model_type_default_max_length(enum fv_field_type t);
/* Effective max length in characters of a text field (0 = none). */
int fv_model_field_max_length(const struct fv_field *f);

/*
 * UTF-8: true if s[0..len) is valid UTF-8 (no overlongs, no surrogates, at
 * most U+10FFFF); *ret_chars (may be NULL) gets the character count, and
 * *ret_bad (may be NULL) the byte offset of the first bad byte.
 */
bool fv_model_utf8_check(const char *s, size_t len, size_t *ret_chars, size_t *ret_bad);

/*
 * Dates. A civil date is valid if 1 <= y <= 9999, the month exists and the
 * day exists in that month (leap years per the Gregorian rules).
 */
bool fv_model_date_valid(int y, int m, int d);
/*
 * Parse a date in the app's date_format (fmt) or ISO YYYY-MM-DD, the whole
 * text. Month abbreviations are matched ignoring case.
 */
FV_MUST_CHECK int fv_model_date_parse(const char *fmt, const char *s, size_t len, int *ret_y,
                                      int *ret_m, int *ret_d);
/* Write y-m-d in format fmt into out[cap]; FV_E_LIMIT if it does not fit. */
FV_MUST_CHECK int fv_model_date_write(const char *fmt, int y, int m, int d, char *out, size_t cap);
/* True if fmt is one of the supported app date formats. */
bool fv_model_date_format_valid(const char *fmt);
#define FV_MODEL_DEFAULT_DATE_FORMAT "dd-MMM-yyyy"

/*
 * Append the syntax tree as an S-expression, e.g.
 * (|| (== A "x") (&& (< B 3) (! (is null C)))) (tests and fuzzers).
 */
FV_MUST_CHECK int fv_model_criteria_dump(const struct fv_criteria *c, struct fv_buf *out);

/* Append a value to a where's parameter list (takes ownership of v's bytes). */
FV_MUST_CHECK int fv_model_where_push(struct fv_sql_where *w, struct fv_sqlval *v);

/*
 * Structural equality of two apps (every field of every struct, defaults by
 * json_equal). Used by the round-trip tests and the app fuzzer.
 */
bool fv_model_app_equal(const struct fv_app *a, const struct fv_app *b);

#endif
