/*
 * model: app definitions (apps, forms, fields, reports), field types with
 * their value rules and Creator v2.1 JSON formats, and the criteria language
 * (parser to a syntax tree, compiler to SQL with bound parameters).
 *
 * No I/O: the module turns bytes into validated structures and SQL text and
 * back. Depends on core and jansson only. See src/model/README.md.
 *
 * SQL naming (the store relies on it): a form's table is
 * "f_<app link>__<form link>" (fv_model_form_table; two apps of a tenant may
 * have forms with the same link name, so the app is part of the name), a
 * field's columns are "c_<field link>" or, for composite types,
 * "c_<field link>__<part>". Link names match [A-Za-z][A-Za-z0-9_]{0,63}, so
 * these identifiers are safe; they are always emitted double-quoted.
 * System columns: "ID" INTEGER PRIMARY KEY, "Added_Time", "Modified_Time"
 * (TEXT, "YYYY-MM-DD HH:MM:SS" UTC), "Added_User", "Modified_User" (TEXT),
 * "row_version" INTEGER.
 *
 * Storage encoding of field values (details in src/model/README.md); empty
 * values are SQL NULL in every column, so stored text is never "":
 *   text types, dropdown, radio   TEXT, the text (UTF-8)
 *   number, autonumber            INTEGER (autonumber prefix added on output)
 *   decimal, percent, currency    INTEGER, value * 10^decimal_places (exact)
 *   date / datetime / time        TEXT "YYYY-MM-DD" / "YYYY-MM-DD HH:MM:SS" / "HH:MM:SS"
 *   decision                      INTEGER 0/1
 *   multi_select, checkbox        TEXT, compact JSON array of choices
 *   url / name / address          2 / 4 / 8 TEXT columns, one per part
 *   lookup                        INTEGER record ID; multi: TEXT JSON array of IDs
 */
#ifndef FV_MODEL_H
#define FV_MODEL_H

#include <jansson.h>

#include "core/core.h"

#define FV_MODEL_LINK_MAX 64  /* link name bytes, without NUL */
#define FV_MODEL_TEXT_MAX 255 /* default max length of single-line text */
#define FV_MODEL_MULTILINE_MAX 65535

/* Field types. The Creator Get Fields type code is fv_model_type_code(). */
enum fv_field_type {
    FV_FIELD_SINGLE_LINE,  /* "single_line"  code 1 */
    FV_FIELD_MULTI_LINE,   /* "multi_line"   code 2 */
    FV_FIELD_EMAIL,        /* "email"        code 3 */
    FV_FIELD_RICH_TEXT,    /* "rich_text"    code 4 */
    FV_FIELD_NUMBER,       /* "number"       code 5 */
    FV_FIELD_DECIMAL,      /* "decimal"      code 6 */
    FV_FIELD_PERCENT,      /* "percent"      code 7 */
    FV_FIELD_CURRENCY,     /* "currency"     code 8 */
    FV_FIELD_AUTONUMBER,   /* "autonumber"   code 9 */
    FV_FIELD_DATE,         /* "date"         code 10 */
    FV_FIELD_DATETIME,     /* "datetime"     code 11 */
    FV_FIELD_DROPDOWN,     /* "dropdown"     code 12 */
    FV_FIELD_RADIO,        /* "radio"        code 13 */
    FV_FIELD_MULTI_SELECT, /* "multi_select" code 14 */
    FV_FIELD_CHECKBOX,     /* "checkbox"     code 15 */
    FV_FIELD_DECISION,     /* "decision"     code 16 */
    FV_FIELD_URL,          /* "url"          code 17 */
    FV_FIELD_PHONE,        /* "phone"        code 19 (our choice, unconfirmed) */
    FV_FIELD_TIME,         /* "time"         code 20 (our choice) */
    FV_FIELD_NAME,         /* "name"         code 29 */
    FV_FIELD_ADDRESS,      /* "address"      code 30 (our choice) */
    FV_FIELD_LOOKUP,       /* "lookup"       code 12 (shown as drop down) */
    FV_FIELD__COUNT
};

/*
 * Storage class of one SQL column. FV_SQL_BLOB is the column type of the two
 * columns of an encrypted field (sealed value and blind index, raw bytes);
 * as a value, s/len hold the bytes (owned, like TEXT). FV_SQL_SECRET is
 * never a column type: it marks a value of an encrypted field that must not
 * reach SQL as it is (s/len hold bytes, NUL-terminated): in a criteria
 * parameter it is a blind-index message (fv_model_field_bidx_message) that
 * the store replaces by its blind indexes (fv_model_bidx_list_sql); in the
 * store's prepared column values it is the encoded plaintext
 * (fv_model_value_encode) that the store seals. A binder that does not know
 * the type binds NULL, which matches nothing and stores nothing (fail
 * closed).
 */
enum fv_sql_type { FV_SQL_NULL, FV_SQL_INT, FV_SQL_REAL, FV_SQL_TEXT, FV_SQL_SECRET, FV_SQL_BLOB };

/*
 * One SQL value, used for column values and bound parameters. TEXT values
 * own their bytes (s, NUL-terminated, len bytes) unless noted; release with
 * fv_model_sqlval_release().
 */
struct fv_sqlval {
    enum fv_sql_type type;
    int64_t i;
    double r;
    char *s;
    size_t len;
};
void fv_model_sqlval_release(struct fv_sqlval *v);

struct fv_form;

struct fv_field {
    char link_name[FV_MODEL_LINK_MAX + 1];
    char *display_name;
    enum fv_field_type type;
    bool required;
    bool unique;
    bool encrypt; /* stored sealed (AES-256-GCM) plus a blind index: see
                     fv_model_field_column and docs/app-format.md */
    bool pii;
    bool contains_health_info;
    int max_length;     /* text types: characters; 0 = type default */
    int decimal_places; /* decimal/percent/currency: 0..9, default 2 */
    char **choices;     /* dropdown/radio/multi_select/checkbox */
    size_t n_choices;
    json_t *default_value;               /* owned reference or NULL */
    char *lookup_form;                   /* lookup: target form link name */
    char *lookup_display;                /* lookup: target field shown as zc_display_value */
    bool lookup_multi;                   /* lookup: array of IDs (stored as JSON text) */
    char *autonumber_prefix;             /* autonumber: optional prefix */
    int64_t autonumber_start;            /* autonumber: first value (default 1) */
    const struct fv_form *lookup_target; /* resolved after parse; borrowed */
};

struct fv_form {
    char link_name[FV_MODEL_LINK_MAX + 1];
    char *display_name;
    struct fv_field *fields;
    size_t n_fields;
};

enum fv_report_type { FV_REPORT_LIST = 1, FV_REPORT_SPREADSHEET = 6 };

struct fv_report {
    char link_name[FV_MODEL_LINK_MAX + 1];
    char *display_name;
    enum fv_report_type type;
    const struct fv_form *form; /* borrowed from the app */
    char **quick_view;          /* field link names (list columns) */
    size_t n_quick_view;
    char **detail_view; /* field link names for detail_view */
    size_t n_detail_view;
    char *criteria;   /* report filter, may be NULL */
    char *sort_field; /* may be NULL: then ID ascending */
    bool sort_desc;
};

struct fv_app {
    char link_name[FV_MODEL_LINK_MAX + 1];
    char *display_name;
    char *date_format; /* "dd-MMM-yyyy" (default), "dd-MM-yyyy", "dd.MM.yyyy",
                          "MM-dd-yyyy", "yyyy-MM-dd", "MMM dd,yyyy" */
    char *time_zone;   /* informational; times are stored and shown in UTC */
    struct fv_form *forms;
    size_t n_forms;
    struct fv_report *reports;
    size_t n_reports;
};

/* ------------------------------------------------------ app definitions */

/*
 * Parse and validate an app definition (docs/app-format.md) from JSON text.
 * Checks: format version, link-name syntax and uniqueness, known field types
 * and properties (unknown keys are errors), choices present where required
 * and only there, defaults valid for their field, lookups pointing at an
 * existing form and display field, report forms and columns existing,
 * report criteria compiling against its form, nesting depth <= max_depth.
 * On success *ret_app is a new app (free with fv_model_app_free).
 * Errors: FV_E_INVALID (reterr says what and where: e.g. "forms[1].fields[3]:
 * unknown type 'colour'"), FV_E_NOMEM.
 */
FV_MUST_CHECK int fv_model_app_parse(const char *json, size_t len, struct fv_app **ret_app,
                                     struct fv_error *reterr);
/* Same from an already-parsed JSON object (borrowed). */
FV_MUST_CHECK int fv_model_app_from_json(const json_t *root, struct fv_app **ret_app,
                                         struct fv_error *reterr);
/* Serialise to the canonical definition JSON (new reference), NULL on OOM. */
json_t *fv_model_app_to_json(const struct fv_app *app);
void fv_model_app_free(struct fv_app *app);
/*
 * Rules for upgrading field `old` of form `form_link` to its new definition
 * `nf` (same link name) beyond the column layout: `encrypt` cannot change,
 * because the stored values would stay in the other form. FV_E_CONFLICT with
 * a message naming the field ("field 'SSN' of form 'Patient' cannot change
 * 'encrypt'..."), else FV_OK. The store calls it while comparing versions.
 */
FV_MUST_CHECK int fv_model_field_upgrade_check(const char *form_link, const struct fv_field *old,
                                               const struct fv_field *nf, struct fv_error *reterr);

/*
 * SQL table name of form (of app), without quotes: "f_<app link>__<form link>".
 * The store creates tables under this name and the criteria compiler uses it
 * for lookup subqueries, so both must call this one function.
 * Errors: FV_E_LIMIT when cap is too small (cap >= 2 * FV_MODEL_LINK_MAX + 5
 * always suffices).
 */
FV_MUST_CHECK int fv_model_form_table(const struct fv_app *app, const struct fv_form *form,
                                      char *ret, size_t cap);

/* Lookups by link name (exact, case-sensitive); NULL when absent. */
const struct fv_form *fv_model_app_form(const struct fv_app *app, const char *link);
const struct fv_report *fv_model_app_report(const struct fv_app *app, const char *link);
const struct fv_field *fv_model_form_field(const struct fv_form *form, const char *link);
/* Find by display name (CSV headers); NULL when absent or ambiguous. */
const struct fv_field *fv_model_form_field_by_display(const struct fv_form *form,
                                                      const char *display);

/* "single_line" etc.; and the reverse (FV_FIELD__COUNT if unknown). */
const char *fv_model_type_name(enum fv_field_type t);
enum fv_field_type fv_model_type_from_name(const char *name);
/* Creator Get Fields `type` code (creator-api.md 5.10). */
int fv_model_type_code(const struct fv_field *f);
/* True for link-name syntax [A-Za-z][A-Za-z0-9_]{0,63}. */
bool fv_model_link_name_valid(const char *s, size_t len);

/* ------------------------------------------------------- columns/values */

/* Maximum number of SQL columns one field uses (address: 8). */
#define FV_MODEL_MAX_COLS 8

/*
 * The SQL columns a field is stored in (the table's schema): count, and for
 * column i its name (without quotes, e.g. "c_Name__first_name"), its SQL
 * type and the composite part name ("first_name"; NULL for single-column
 * fields). A field with `encrypt` is stored in two BLOB columns whatever its
 * type (model/table.c): FV_MODEL_ENC_COL_BIDX "c_<field>__bidx", the blind
 * index (FV_MODEL_BIDX_BYTES; NULL for composite types and empty values),
 * and FV_MODEL_ENC_COL_DATA "c_<field>", the sealed value. The blind index
 * comes first so that an index over the field's columns (unique fields)
 * serves lookups by blind index.
 */
size_t fv_model_field_ncols(const struct fv_field *f);
FV_MUST_CHECK int fv_model_field_column(const struct fv_field *f, size_t i, char *ret_name,
                                        size_t cap, enum fv_sql_type *ret_type,
                                        const char **ret_part);
#define FV_MODEL_ENC_COL_BIDX 0
#define FV_MODEL_ENC_COL_DATA 1

/*
 * Searching a blind index: one bound BLOB parameter holds the value's blind
 * indexes under every live key version, FV_MODEL_BIDX_BYTES each, one after
 * the other (at most FV_MODEL_BIDX_SLOTS; the store checks its keyring limit
 * against it at compile time). fv_model_bidx_list_sql appends the SQL list
 * that splits it, "(substr(?N, 1, 16), substr(?N, 17, 16), ...)" with N =
 * param (1-based), for "<bidx column> IN <list>". Slots past the end of the
 * parameter are empty blobs, which no stored blind index equals, and the
 * list never holds NULL, so NOT IN stays two-valued. SQLite evaluates the
 * list once per statement and can search an index on the column with it.
 * FV_E_LIMIT, FV_E_NOMEM (the buffer's own rules).
 */
#define FV_MODEL_BIDX_BYTES 16
#define FV_MODEL_BIDX_SLOTS 8
FV_MUST_CHECK int fv_model_bidx_list_sql(struct fv_buf *out, size_t param);

/*
 * The value columns of a field: what fv_model_value_parse writes and
 * fv_model_value_format reads (for a field without `encrypt` the same as the
 * storage columns above; an encrypted field's value columns are the ones its
 * type would store, encoded into one sealed value).
 */
size_t fv_model_field_value_ncols(const struct fv_field *f);
FV_MUST_CHECK int fv_model_field_value_column(const struct fv_field *f, size_t i, char *ret_name,
                                              size_t cap, enum fv_sql_type *ret_type,
                                              const char **ret_part);

/* --------------------------------------------------- encrypted fields */

/*
 * Types that may carry `encrypt`: text types, numbers, dates and times,
 * dropdown, radio, phone, email, url, name and address. Not autonumber
 * (generated, sorted), lookup (joins), multi_select and checkbox
 * (.contains() needs the elements) or decision (two values: the blind index
 * would reveal them).
 */
bool fv_model_type_can_encrypt(enum fv_field_type t);
/* True if f is encrypted and has a blind index (one value column). */
bool fv_model_field_has_bidx(const struct fv_field *f);

/*
 * Encode the value columns cols[0..fv_model_field_value_ncols(f)) of f into
 * a new buffer (fv_malloc, caller frees): per column a tag byte (0 NULL,
 * 1 INT, 2 TEXT, 3 REAL), then INT and REAL as 8 bytes big-endian, TEXT as a
 * 4-byte big-endian length and the bytes. Deterministic, so the encoding of
 * a criteria literal equals the encoding of the stored value it matches.
 * All-NULL columns give *ret = NULL, *ret_len = 0 (stored as SQL NULL).
 * Errors: FV_E_NOMEM, FV_E_LIMIT (over 2^31 bytes).
 */
FV_MUST_CHECK int fv_model_value_encode(const struct fv_field *f, const struct fv_sqlval *cols,
                                        uint8_t **ret, size_t *ret_len);
/*
 * Decode p[0..len) made by fv_model_value_encode for f into
 * out[0..fv_model_field_value_ncols(f)) (TEXT values owned: release each
 * with fv_model_sqlval_release). FV_E_CORRUPT when malformed (nothing to
 * release then), FV_E_NOMEM.
 */
FV_MUST_CHECK int fv_model_value_decode(const struct fv_field *f, const uint8_t *p, size_t len,
                                        struct fv_sqlval *out);
/*
 * The blind-index message of an encoded value of field `field` of form
 * `form` of app `app` (link names):
 *   "fv-bidx-v1" || app || 0x00 || form || 0x00 || field || 0x00 || enc.
 * New buffer (fv_malloc, NUL-terminated after len bytes). The store MACs it
 * with each key version. FV_E_NOMEM.
 */
FV_MUST_CHECK int fv_model_field_bidx_message(const char *app, const char *form, const char *field,
                                              const uint8_t *enc, size_t enc_len, uint8_t **ret,
                                              size_t *ret_len);

/*
 * Convert a JSON input value for field f (Creator v2.1 "In" format,
 * creator-api.md section 9) to its column values out[0..ncols). Accepts
 * strings or numbers for numeric types, the app date format and ISO
 * (YYYY-MM-DD) for dates, objects or strings for composites. JSON null or ""
 * gives SQL NULL columns. Checks max length, choices, e-mail/phone/URL shape,
 * digits (FV_E_TOO_MANY_DIGITS), decimal format (FV_E_DECIMAL_FORMAT).
 * Does not check `required` or `unique` (the store does, on the full row).
 * Autonumber fields are not settable: FV_E_VALIDATION.
 * On error out[] holds nothing to release; reterr names the field, never its
 * value. Errors: FV_E_VALIDATION, FV_E_TOO_MANY_DIGITS,
 * FV_E_DECIMAL_FORMAT, FV_E_NOMEM.
 */
FV_MUST_CHECK int fv_model_value_parse(const struct fv_app *app, const struct fv_field *f,
                                       const json_t *in, struct fv_sqlval *out,
                                       struct fv_error *reterr);

/* Same for a CSV cell (text; "" is NULL; decision accepts true/false/yes/no/1/0). */
FV_MUST_CHECK int fv_model_value_parse_text(const struct fv_app *app, const struct fv_field *f,
                                            const char *text, size_t len, struct fv_sqlval *out,
                                            struct fv_error *reterr);

/*
 * Format the stored columns cols[0..ncols) of field f as its v2.1 "Out" JSON
 * value (new reference). All-NULL columns give "" for scalar text types and
 * the documented empty shape for composites. Lookup values are formatted
 * with lookup_display_text (borrowed, may be NULL) as zc_display_value;
 * for a multi lookup it may be a JSON array of strings parallel to the IDs.
 * Returns NULL only on OOM.
 */
json_t *fv_model_value_format(const struct fv_app *app, const struct fv_field *f,
                              const struct fv_sqlval *cols, const char *lookup_display_text);

/* Format/parse system time columns ("YYYY-MM-DD HH:MM:SS" <-> app format). */
FV_MUST_CHECK int fv_model_datetime_format(const struct fv_app *app, const char *iso, char *out,
                                           size_t cap);

/* ------------------------------------------------------------- criteria */

struct fv_criteria; /* opaque syntax tree */

/*
 * Parse a criteria expression (docs/criteria.md; creator-api.md section 8)
 * into a syntax tree. Limits: at most 4096 bytes, nesting depth 32, 256
 * tests. Errors: FV_E_CRITERIA with reterr->pos at the byte where the
 * expression broke and a message saying what was expected; FV_E_NOMEM.
 * *ret is freed with fv_model_criteria_free.
 */
FV_MUST_CHECK int fv_model_criteria_parse(const char *text, size_t len, struct fv_criteria **ret,
                                          struct fv_error *reterr);
void fv_model_criteria_free(struct fv_criteria *c);

/* Compiled WHERE fragment: SQL text (no leading WHERE) and its parameters. */
struct fv_sql_where {
    struct fv_buf sql;
    struct fv_sqlval *params; /* owned */
    size_t n_params;
    size_t cap_params;
};
void fv_model_where_init(struct fv_sql_where *w);
void fv_model_where_release(struct fv_sql_where *w);

/*
 * Compile a criteria tree against form (of app) into w (appending; several
 * compiles are joined with AND by the caller). Field paths must name fields
 * of the form or system fields (ID, Added_Time, ...); composite parts via
 * dot; lookup targets via dot (compiled as a subquery on the target table).
 * Literals are converted with the field's rules and bound as parameters:
 * no value ever appears in the SQL text. Refused: unknown field, operator
 * not valid for the type (e.g. < on a multi select), wrong literal type.
 * Errors: FV_E_CRITERIA (reterr names the field/operator and position),
 * FV_E_NOMEM, FV_E_LIMIT. On error w is rolled back to its state on entry
 * (or reset to empty if its buffer freed itself).
 */
FV_MUST_CHECK int fv_model_criteria_compile(const struct fv_criteria *c, const struct fv_app *app,
                                            const struct fv_form *form, struct fv_sql_where *w,
                                            struct fv_error *reterr);

#endif
