/*
 * Unit tests for model/value.c: columns, parsing of every field type from
 * JSON and CSV text (good and bad input), and "Out" formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "model_fixture.h"

static struct fv_app *app;

static int setup(void **state)
{
    struct fv_error err;
    (void)state;
    app = fixture_parse(fixture_app, &err);
    if (app == NULL) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fv_model_app_free(app);
    app = NULL;
    return 0;
}

static const struct fv_field *field(const char *form, const char *name)
{
    const struct fv_field *f = fv_model_form_field(fv_model_app_form(app, form), name);
    assert_non_null(f);
    return f;
}

static struct fv_sqlval cols[FV_MODEL_MAX_COLS];
static struct fv_error err;

static void release(void)
{
    for (size_t i = 0; i < FV_MODEL_MAX_COLS; i++)
        fv_model_sqlval_release(&cols[i]);
}

/* Parse '-quoted JSON for Patient.<name>; returns rc. */
static int pj(const char *name, const char *json)
{
    char *j = fixture_json(json);
    json_t *in = json_loads(j, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    free(j);
    assert_non_null(in);
    release();
    fv_error_init(&err);
    int rc = fv_model_value_parse(app, field("Patient", name), in, cols, &err);
    json_decref(in);
    return rc;
}

static int pv(const char *form, const char *name, const char *json)
{
    char *j = fixture_json(json);
    json_t *in = json_loads(j, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    free(j);
    assert_non_null(in);
    release();
    fv_error_init(&err);
    int rc = fv_model_value_parse(app, field(form, name), in, cols, &err);
    json_decref(in);
    return rc;
}

static int pt(const char *name, const char *text)
{
    release();
    fv_error_init(&err);
    return fv_model_value_parse_text(app, field("Patient", name), text, strlen(text), cols, &err);
}

static void assert_text(size_t i, const char *want)
{
    assert_int_equal(cols[i].type, FV_SQL_TEXT);
    assert_string_equal(cols[i].s, want);
    assert_int_equal(cols[i].len, strlen(want));
}

static void assert_int_col(size_t i, int64_t want)
{
    assert_int_equal(cols[i].type, FV_SQL_INT);
    assert_int_equal(cols[i].i, want);
}

static void assert_all_null(void)
{
    for (size_t i = 0; i < FV_MODEL_MAX_COLS; i++)
        assert_int_equal(cols[i].type, FV_SQL_NULL);
}

/* Format cols for form.name and compare the compact JSON. */
static void assert_format(const char *form, const char *name, const char *disp, const char *want)
{
    json_t *o = fv_model_value_format(app, field(form, name), cols, disp);
    assert_non_null(o);
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENCODE_ANY);
    char *w = fixture_json(want);
    assert_string_equal(s, w);
    free(w);
    free(s);
    json_decref(o);
}

/* -------------------------------------------------------------- columns */

static void test_field_column_names(void **state)
{
    char name[128];
    enum fv_sql_type t;
    const char *part;
    (void)state;
    assert_int_equal(fv_model_field_ncols(field("Patient", "Home")), 8);
    assert_int_equal(
        fv_model_field_column(field("Patient", "Home"), 7, name, sizeof(name), &t, &part), FV_OK);
    assert_string_equal(name, "c_Home__longitude");
    assert_string_equal(part, "longitude");
    assert_int_equal(t, FV_SQL_TEXT);
    assert_int_equal(
        fv_model_field_column(field("Patient", "Age"), 0, name, sizeof(name), &t, &part), FV_OK);
    assert_string_equal(name, "c_Age");
    assert_null(part);
    assert_int_equal(t, FV_SQL_INT);
    assert_int_equal(fv_model_field_ncols(field("Patient", "Full_Name")), 4);
    assert_int_equal(fv_model_field_ncols(field("Patient", "Site")), 2);
    /* encrypted: blind index, then the sealed value, both raw bytes */
    assert_int_equal(fv_model_field_ncols(field("Patient", "Email")), 2);
    assert_int_equal(fv_model_field_column(field("Patient", "Email"), FV_MODEL_ENC_COL_BIDX, name,
                                           sizeof(name), &t, &part),
                     FV_OK);
    assert_string_equal(name, "c_Email__bidx");
    assert_int_equal(t, FV_SQL_BLOB);
    assert_null(part);
    assert_int_equal(fv_model_field_column(field("Patient", "Email"), FV_MODEL_ENC_COL_DATA, name,
                                           sizeof(name), &t, &part),
                     FV_OK);
    assert_string_equal(name, "c_Email");
    assert_int_equal(t, FV_SQL_BLOB);
}

static void test_bidx_list_sql(void **state)
{
    struct fv_buf b;
    (void)state;
    fv_buf_init(&b, 4096);
    assert_int_equal(fv_model_bidx_list_sql(&b, 12), FV_OK);
    assert_string_equal(b.p, "(substr(?12, 1, 16), substr(?12, 17, 16), substr(?12, 33, 16), "
                             "substr(?12, 49, 16), substr(?12, 65, 16), substr(?12, 81, 16), "
                             "substr(?12, 97, 16), substr(?12, 113, 16))");
    fv_buf_release(&b);
    /* a buffer too small for the list fails and frees itself */
    fv_buf_init(&b, 32);
    assert_int_equal(fv_model_bidx_list_sql(&b, 1), FV_E_LIMIT);
    fv_buf_release(&b);
}

static void test_field_column_errors(void **state)
{
    char name[8];
    (void)state;
    assert_int_equal(
        fv_model_field_column(field("Patient", "Age"), 1, name, sizeof(name), NULL, NULL),
        FV_E_INVALID);
    assert_int_equal(fv_model_field_column(field("Patient", "Patient_Number"), 0, name,
                                           sizeof(name), NULL, NULL),
                     FV_E_LIMIT);
}

/* ----------------------------------------------------------------- text */

static void test_value_parse_single_line_ok(void **state)
{
    (void)state;
    assert_int_equal(pj("Patient_Number", "'P-0001'"), FV_OK);
    assert_text(0, "P-0001");
    /* 16 characters of two bytes each: max_length counts characters */
    assert_int_equal(pj("Patient_Number",
                        "'\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
                        "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9'"),
                     FV_OK);
    assert_int_equal(cols[0].len, 32);
    assert_int_equal(pj("Patient_Number", "12345"), FV_OK);
    assert_text(0, "12345");
}

static void test_value_parse_single_line_too_long(void **state)
{
    (void)state;
    assert_int_equal(pj("Patient_Number", "'12345678901234567'"), FV_E_VALIDATION);
    assert_string_equal(err.msg, "field 'Patient_Number': longer than 16 characters");
    assert_all_null();
}

static void test_value_parse_single_line_control_char(void **state)
{
    (void)state;
    assert_int_equal(pj("Patient_Number", "'a\\nb'"), FV_E_VALIDATION);
    assert_int_equal(pj("Patient_Number", "'a\\u0000b'"), FV_E_VALIDATION);
    assert_int_equal(pj("Patient_Number", "true"), FV_E_VALIDATION);
    assert_string_equal(err.msg, "field 'Patient_Number': expected a string");
}

static void test_value_parse_text_invalid_utf8(void **state)
{
    (void)state;
    assert_int_equal(pt("Patient_Number", "a\xC3\x28"), FV_E_VALIDATION);
    assert_string_equal(err.msg, "field 'Patient_Number': not valid UTF-8");
    assert_int_equal(pt("Notes", "\xED\xA0\x80"), FV_E_VALIDATION); /* surrogate */
    assert_int_equal(pt("Notes", "\xC0\xAF"), FV_E_VALIDATION);     /* overlong */
}

static void test_value_parse_multi_line_ok(void **state)
{
    (void)state;
    assert_int_equal(pj("Notes", "'line 1\\r\\nline 2\\tend'"), FV_OK);
    assert_text(0, "line 1\r\nline 2\tend");
    assert_int_equal(pj("Bio", "'<b>bold</b>'"), FV_OK);
    assert_text(0, "<b>bold</b>");
}

static void test_value_parse_email_ok(void **state)
{
    (void)state;
    assert_int_equal(pj("Email", "'jane.doe+tag@mail.example.org'"), FV_OK);
    assert_text(0, "jane.doe+tag@mail.example.org");
}

static void test_value_parse_email_bad(void **state)
{
    static const char *const bad[] = {"'plain'",      "'a@b'",      "'@b.com'",  "'a@@b.com'",
                                      "'a b@c.com'",  "'a@-b.com'", "'a@b.c'",   "'.a@b.com'",
                                      "'a..b@c.com'", "'a@b..com'", "'a@b.c0m'", "'a@b.com.'"};
    (void)state;
    for (size_t i = 0; i < FV_ARRAY_LEN(bad); i++) {
        assert_int_equal(pj("Email", bad[i]), FV_E_VALIDATION);
        assert_string_equal(err.msg, "field 'Email': not a valid e-mail address");
    }
}

static void test_value_parse_phone_ok(void **state)
{
    (void)state;
    assert_int_equal(pj("Phone", "'739.242.6500 x36035'"), FV_OK);
    assert_text(0, "739.242.6500 x36035");
    assert_int_equal(pj("Phone", "'+1 (610) 394-8336'"), FV_OK);
    assert_int_equal(pj("Phone", "16103948336"), FV_OK);
    assert_text(0, "16103948336");
}

static void test_value_parse_phone_bad(void **state)
{
    (void)state;
    assert_int_equal(pj("Phone", "'12'"), FV_E_VALIDATION);
    assert_int_equal(pj("Phone", "'call 555 1234'"), FV_E_VALIDATION);
    assert_int_equal(pj("Phone", "'555;1234'"), FV_E_VALIDATION);
    assert_string_equal(err.msg, "field 'Phone': not a valid phone number");
}

static void test_value_parse_error_has_no_value(void **state)
{
    (void)state;
    assert_int_equal(pj("Email", "'secret-value@@x'"), FV_E_VALIDATION);
    assert_null(strstr(err.msg, "secret"));
    assert_int_equal(pj("Blood_Type", "'secret-choice'"), FV_E_VALIDATION);
    assert_null(strstr(err.msg, "secret"));
    assert_int_equal(pj("Age", "'secret'"), FV_E_VALIDATION);
    assert_null(strstr(err.msg, "secret"));
}

/* -------------------------------------------------------------- numbers */

static void test_value_parse_number_ok(void **state)
{
    (void)state;
    assert_int_equal(pj("Age", "42"), FV_OK);
    assert_int_col(0, 42);
    assert_int_equal(pj("Age", "'-17'"), FV_OK);
    assert_int_col(0, -17);
    assert_int_equal(pj("Age", "'999999999999999'"), FV_OK);
    assert_int_col(0, 999999999999999);
    assert_int_equal(pj("Age", "'000000000000000001'"), FV_OK); /* leading zeros are not digits */
    assert_int_col(0, 1);
    assert_int_equal(pj("Age", "12.0"), FV_OK);
    assert_int_col(0, 12);
}

static void test_value_parse_number_too_many_digits(void **state)
{
    (void)state;
    assert_int_equal(pj("Age", "1000000000000000"), FV_E_TOO_MANY_DIGITS);
    assert_string_equal(err.msg, "field 'Age': too many digits");
    assert_int_equal(pj("Age", "'-1000000000000000'"), FV_E_TOO_MANY_DIGITS);
    assert_int_equal(pj("Age", "-9223372036854775808"), FV_E_TOO_MANY_DIGITS);
    assert_int_equal(pj("Age", "1e300"), FV_E_TOO_MANY_DIGITS);
}

static void test_value_parse_number_bad(void **state)
{
    static const char *const bad[] = {"'12a'", "' 12'", "'+12'", "'-'", "'1.5'",
                                      "1.5",   "true",  "[1]",   "{}"};
    (void)state;
    for (size_t i = 0; i < FV_ARRAY_LEN(bad); i++) {
        assert_int_equal(pj("Age", bad[i]), FV_E_VALIDATION);
        assert_string_equal(err.msg, "field 'Age': not a whole number");
    }
}

static void test_value_parse_decimal_ok(void **state)
{
    (void)state;
    assert_int_equal(pj("Weight", "'70.5'"), FV_OK);
    assert_int_col(0, 705);
    assert_int_equal(pj("Weight", "70"), FV_OK);
    assert_int_col(0, 700);
    assert_int_equal(pj("Weight", "0.1"), FV_OK);
    assert_int_col(0, 1);
    assert_int_equal(pj("Weight", "-0.5"), FV_OK);
    assert_int_col(0, -5);
    assert_int_equal(pj("Score", "'99.99'"), FV_OK);
    assert_int_col(0, 9999);
    assert_int_equal(pj("Zero", "'12'"), FV_OK);
    assert_int_col(0, 12);
    assert_int_equal(pv("Visit", "Fee", "'100.00'"), FV_OK);
    assert_int_col(0, 10000);
    assert_int_equal(pv("Visit", "Fee", "0.00001e5"), FV_OK);
    assert_int_col(0, 100);
}

static void test_value_parse_decimal_format(void **state)
{
    static const char *const bad[] = {"'1.25'", "'abc'", "'1.'", "'.5'", "'1,5'",
                                      "'1e3'",  "0.25",  "true", "'--1'"};
    (void)state;
    for (size_t i = 0; i < FV_ARRAY_LEN(bad); i++) {
        assert_int_equal(pj("Weight", bad[i]), FV_E_DECIMAL_FORMAT);
        assert_string_equal(err.msg, "field 'Weight': not a number with at most 1 decimal places");
    }
    assert_int_equal(pj("Zero", "'12.5'"), FV_E_DECIMAL_FORMAT);
    assert_int_equal(pj("Zero", "'12.0'"), FV_E_DECIMAL_FORMAT);
}

static void test_value_parse_decimal_too_many_digits(void **state)
{
    (void)state;
    assert_int_equal(pj("Weight", "'1234567890123456'"), FV_E_TOO_MANY_DIGITS);
    assert_int_equal(pj("Weight", "1e20"), FV_E_TOO_MANY_DIGITS);
    assert_int_equal(pj("Weight", "'123456789012345.5'"), FV_OK);
    assert_int_col(0, 1234567890123455);
}

static void test_value_parse_autonumber_refused(void **state)
{
    (void)state;
    assert_int_equal(pj("Ticket", "5"), FV_E_VALIDATION);
    assert_string_equal(err.msg, "field 'Ticket': autonumber fields are not settable");
    assert_int_equal(pt("Ticket", "5"), FV_E_VALIDATION);
}

/* ---------------------------------------------------------------- dates */

static void test_value_parse_date_ok(void **state)
{
    (void)state;
    assert_int_equal(pj("Born", "'07-Sep-2026'"), FV_OK);
    assert_text(0, "2026-09-07");
    assert_int_equal(pj("Born", "'7-sep-2026'"), FV_OK);
    assert_text(0, "2026-09-07");
    assert_int_equal(pj("Born", "'2026-09-07'"), FV_OK);
    assert_text(0, "2026-09-07");
    assert_int_equal(pj("Born", "'29-Feb-2024'"), FV_OK);
    assert_int_equal(pj("Born", "'29-Feb-2000'"), FV_OK);
}

static void test_value_parse_date_bad(void **state)
{
    static const char *const bad[] = {"'29-Feb-2023'",          "'29-Feb-1900'", "'31-Apr-2024'",
                                      "'2024-13-01'",           "'2024-1-1'",    "'00-Jan-2024'",
                                      "'07-Sept-2026'",         "'07/09/2026'",  "'07-Sep-26'",
                                      "'07-Sep-2026 10:00:00'", "20260907"};
    (void)state;
    for (size_t i = 0; i < FV_ARRAY_LEN(bad); i++) {
        assert_int_equal(pj("Born", bad[i]), FV_E_VALIDATION);
    }
    assert_int_equal(pj("Born", "'31-Apr-2024'"), FV_E_VALIDATION);
    assert_string_equal(err.msg, "field 'Born': not a valid date");
}

static void test_value_parse_datetime_ok(void **state)
{
    (void)state;
    assert_int_equal(pj("Seen_At", "'07-Sep-2026 14:42:52'"), FV_OK);
    assert_text(0, "2026-09-07 14:42:52");
    assert_int_equal(pj("Seen_At", "'2026-09-07T14:42:52Z'"), FV_OK);
    assert_text(0, "2026-09-07 14:42:52");
    assert_int_equal(pj("Seen_At", "'2026-09-07 14:42'"), FV_OK);
    assert_text(0, "2026-09-07 14:42:00");
}

static void test_value_parse_datetime_bad(void **state)
{
    static const char *const bad[] = {"'07-Sep-2026'",         "'07-Sep-2026 24:00:00'",
                                      "'07-Sep-2026 10:60'",   "'2026-09-07T10:00:00+02:00'",
                                      "'2026-02-30T10:00:00'", "'x 10:00'"};
    (void)state;
    for (size_t i = 0; i < FV_ARRAY_LEN(bad); i++)
        assert_int_equal(pj("Seen_At", bad[i]), FV_E_VALIDATION);
    assert_string_equal(err.msg, "field 'Seen_At': not a valid date-time");
}

static void test_value_parse_time_ok(void **state)
{
    (void)state;
    assert_int_equal(pj("Wake", "'9:05'"), FV_OK);
    assert_text(0, "09:05:00");
    assert_int_equal(pj("Wake", "'23:59:59'"), FV_OK);
    assert_text(0, "23:59:59");
}

static void test_value_parse_time_bad(void **state)
{
    static const char *const bad[] = {"'24:00'",       "'12:5'",  "'12'",
                                      "'12:00:00:00'", "'ab:cd'", "1200"};
    (void)state;
    for (size_t i = 0; i < FV_ARRAY_LEN(bad); i++)
        assert_int_equal(pj("Wake", bad[i]), FV_E_VALIDATION);
}

/* ------------------------------------------------------------- decision */

static void test_value_parse_decision_ok(void **state)
{
    (void)state;
    assert_int_equal(pj("Active", "true"), FV_OK);
    assert_int_col(0, 1);
    assert_int_equal(pj("Active", "'false'"), FV_OK);
    assert_int_col(0, 0);
    assert_int_equal(pt("Active", "Yes"), FV_OK);
    assert_int_col(0, 1);
    assert_int_equal(pt("Active", "0"), FV_OK);
    assert_int_col(0, 0);
}

static void test_value_parse_decision_bad(void **state)
{
    (void)state;
    assert_int_equal(pj("Active", "'maybe'"), FV_E_VALIDATION);
    assert_int_equal(pj("Active", "2"), FV_E_VALIDATION);
    assert_int_equal(pt("Active", "truex"), FV_E_VALIDATION);
    assert_string_equal(err.msg, "field 'Active': not true or false");
}

/* -------------------------------------------------------------- choices */

static void test_value_parse_dropdown_ok(void **state)
{
    (void)state;
    assert_int_equal(pj("Blood_Type", "'AB+'"), FV_OK);
    assert_text(0, "AB+");
    assert_int_equal(pj("Gender", "'X'"), FV_OK);
}

static void test_value_parse_dropdown_not_choice(void **state)
{
    (void)state;
    assert_int_equal(pj("Blood_Type", "'ab+'"), FV_E_VALIDATION);
    assert_string_equal(err.msg, "field 'Blood_Type': not one of its choices");
    assert_int_equal(pj("Gender", "['F']"), FV_E_VALIDATION);
}

static void test_value_parse_multi_select_ok(void **state)
{
    (void)state;
    assert_int_equal(pj("Allergies", "['Milk','Nuts','Milk']"), FV_OK);
    assert_text(0, "[\"Milk\",\"Nuts\"]");
    assert_int_equal(pj("Allergies", "'Nuts'"), FV_OK);
    assert_text(0, "[\"Nuts\"]");
    assert_int_equal(pj("Allergies", "[]"), FV_OK);
    assert_all_null();
    assert_int_equal(pt("Allergies", "Nuts, Milk"), FV_OK);
    assert_text(0, "[\"Nuts\",\"Milk\"]");
    assert_int_equal(pt("Consents", "[\"SMS\"]"), FV_OK);
    assert_text(0, "[\"SMS\"]");
}

static void test_value_parse_multi_select_bad(void **state)
{
    (void)state;
    assert_int_equal(pj("Allergies", "['Milk','Eggs']"), FV_E_VALIDATION);
    assert_string_equal(err.msg, "field 'Allergies': not one of its choices");
    assert_int_equal(pj("Allergies", "[1]"), FV_E_VALIDATION);
    assert_int_equal(pj("Allergies", "5"), FV_E_VALIDATION);
    assert_string_equal(err.msg, "field 'Allergies': expected an array of choices");
    assert_int_equal(pt("Allergies", "[\"Milk\""), FV_E_VALIDATION);
    assert_int_equal(pt("Allergies", "Milk;Nuts"), FV_E_VALIDATION);
}

/* ----------------------------------------------------------- composites */

static void test_value_parse_url_ok(void **state)
{
    (void)state;
    assert_int_equal(pj("Site", "'https://example.com/a?b=c'"), FV_OK);
    assert_text(0, "https://example.com/a?b=c");
    assert_int_equal(cols[1].type, FV_SQL_NULL);
    assert_int_equal(pj("Site", "{'value':'http://x.org','title':'X'}"), FV_OK);
    assert_text(0, "http://x.org");
    assert_text(1, "X");
    assert_int_equal(pj("Site", "{'url':'ftp://x.org/f','value':'<a>junk</a>'}"), FV_OK);
    assert_text(0, "ftp://x.org/f");
}

static void test_value_parse_url_bad(void **state)
{
    static const char *const bad[] = {"'javascript:alert(1)'",
                                      "'http://'",
                                      "'www.x.org'",
                                      "'http://a b'",
                                      "'http://x.org/\\\"><script>'",
                                      "{'title':'no url'}",
                                      "{'link':'http://x.org'}",
                                      "5"};
    (void)state;
    for (size_t i = 0; i < FV_ARRAY_LEN(bad); i++)
        assert_int_equal(pj("Site", bad[i]), FV_E_VALIDATION);
    assert_int_equal(pj("Site", "'javascript:alert(1)'"), FV_E_VALIDATION);
    assert_string_equal(err.msg, "field 'Site.url': not a valid http, https or ftp URL");
}

static void test_value_parse_name_ok(void **state)
{
    (void)state;
    assert_int_equal(pj("Full_Name", "{'prefix':'Dr','first_name':'Ada','last_name':'Lovelace',"
                                     "'zc_display_value':'ignored'}"),
                     FV_OK);
    assert_text(0, "Dr");
    assert_text(1, "Ada");
    assert_text(2, "Lovelace");
    assert_int_equal(cols[3].type, FV_SQL_NULL);
    assert_int_equal(pj("Full_Name", "'Mary Ann Evans'"), FV_OK);
    assert_text(1, "Mary Ann");
    assert_text(2, "Evans");
    assert_int_equal(pj("Full_Name", "'Plato'"), FV_OK);
    assert_text(1, "Plato");
    assert_int_equal(pt("Full_Name", "{\"last_name\":\"Eliot\"}"), FV_OK);
    assert_text(2, "Eliot");
}

static void test_value_parse_name_bad(void **state)
{
    (void)state;
    assert_int_equal(pj("Full_Name", "{'middle_name':'x'}"), FV_E_VALIDATION);
    assert_string_equal(err.msg, "field 'Full_Name': unknown part 'middle_name'");
    assert_int_equal(pj("Full_Name", "{'first_name':5}"), FV_E_VALIDATION);
    assert_string_equal(err.msg, "field 'Full_Name.first_name': expected a string");
    assert_int_equal(pj("Full_Name", "[1]"), FV_E_VALIDATION);
    assert_all_null();
}

static void test_value_parse_address_ok(void **state)
{
    (void)state;
    assert_int_equal(pj("Home", "{'address_line_1':'1 Main St','district_city':'Springfield',"
                                "'postal_code':'12345','latitude':-33.5,'longitude':'151.25'}"),
                     FV_OK);
    assert_text(0, "1 Main St");
    assert_text(2, "Springfield");
    assert_text(6, "-33.5");
    assert_text(7, "151.25");
}

static void test_value_parse_address_bad(void **state)
{
    (void)state;
    assert_int_equal(pj("Home", "{'latitude':'91'}"), FV_E_VALIDATION);
    assert_string_equal(err.msg, "field 'Home.latitude': not a valid coordinate");
    assert_int_equal(pj("Home", "{'longitude':'east'}"), FV_E_VALIDATION);
    assert_int_equal(pj("Home", "{'country':'x\\ny'}"), FV_E_VALIDATION);
}

/* -------------------------------------------------------------- lookups */

static void test_value_parse_lookup_ok(void **state)
{
    (void)state;
    assert_int_equal(pv("Visit", "Patient", "'3894000000012001'"), FV_OK);
    assert_int_col(0, 3894000000012001);
    assert_int_equal(pv("Visit", "Patient", "7"), FV_OK);
    assert_int_col(0, 7);
    assert_int_equal(pv("Visit", "Patient", "{'ID':'8','zc_display_value':'P-1'}"), FV_OK);
    assert_int_col(0, 8);
    assert_int_equal(pv("Visit", "Others", "['1',2,'1']"), FV_OK);
    assert_text(0, "[1,2]");
    assert_int_equal(pv("Visit", "Others", "'5'"), FV_OK);
    assert_text(0, "[5]");
}

static void test_value_parse_lookup_bad(void **state)
{
    static const char *const bad[] = {
        "'0'",       "'-1'",   "'abc'", "[1]", "1.5", "true", "'99999999999999999999'",
        "{'ID':{}}", "{'x':1}"};
    (void)state;
    for (size_t i = 0; i < FV_ARRAY_LEN(bad); i++)
        assert_int_equal(pv("Visit", "Patient", bad[i]), FV_E_VALIDATION);
    assert_string_equal(err.msg, "field 'Patient': not a record ID");
    assert_int_equal(pv("Visit", "Others", "['1','x']"), FV_E_VALIDATION);
    assert_int_equal(pv("Visit", "Others", "[[1]]"), FV_E_VALIDATION);
}

static void test_value_parse_null_and_empty(void **state)
{
    static const char *const names[] = {"Patient_Number", "Age",  "Weight", "Born",
                                        "Active",         "Home", "Site",   "Allergies"};
    (void)state;
    for (size_t i = 0; i < FV_ARRAY_LEN(names); i++) {
        assert_int_equal(pj(names[i], "null"), FV_OK);
        assert_all_null();
        assert_int_equal(pj(names[i], "''"), FV_OK);
        assert_all_null();
        assert_int_equal(pt(names[i], ""), FV_OK);
        assert_all_null();
    }
}

static void test_value_parse_text_lookup_multi(void **state)
{
    (void)state;
    release();
    fv_error_init(&err);
    assert_int_equal(
        fv_model_value_parse_text(app, field("Visit", "Others"), "3, 4", 4, cols, &err), FV_OK);
    assert_text(0, "[3,4]");
    release();
    assert_int_equal(fv_model_value_parse_text(app, field("Visit", "Others"), "3;4", 3, cols, &err),
                     FV_E_VALIDATION);
}

/* --------------------------------------------------------------- format */

static void set_text(size_t i, const char *s)
{
    fv_model_sqlval_release(&cols[i]);
    cols[i].type = FV_SQL_TEXT;
    cols[i].s = fv_strdup(s);
    cols[i].len = strlen(s);
}

static void set_int(size_t i, int64_t v)
{
    fv_model_sqlval_release(&cols[i]);
    cols[i].type = FV_SQL_INT;
    cols[i].i = v;
}

static void test_value_format_scalars(void **state)
{
    (void)state;
    release();
    assert_format("Patient", "Patient_Number", NULL, "''");
    assert_format("Patient", "Age", NULL, "''");
    assert_format("Patient", "Active", NULL, "false");
    set_text(0, "P-1");
    assert_format("Patient", "Patient_Number", NULL, "'P-1'");
    set_int(0, 42);
    assert_format("Patient", "Age", NULL, "'42'");
    set_int(0, 705);
    assert_format("Patient", "Weight", NULL, "'70.5'");
    set_int(0, -5);
    assert_format("Visit", "Fee", NULL, "'-0.05'");
    set_int(0, 12);
    assert_format("Patient", "Zero", NULL, "'12'");
    set_int(0, 101);
    assert_format("Patient", "Ticket", NULL, "'P-101'");
    set_int(0, 1);
    assert_format("Patient", "Active", NULL, "true");
    set_text(0, "09:05:00");
    assert_format("Patient", "Wake", NULL, "'09:05:00'");
}

/* Corrupt stored text (invalid UTF-8) is shown empty, never as an error. */
static void test_value_format_corrupt_text(void **state)
{
    (void)state;
    release();
    set_text(0, "\xff\xfe");
    assert_format("Patient", "Patient_Number", NULL, "''");
    set_text(1, "Ada");
    assert_format("Patient", "Full_Name", NULL,
                  "{'prefix':'','first_name':'Ada','last_name':'','suffix':'',"
                  "'zc_display_value':'Ada'}");
    release();
    set_int(0, 7);
    assert_format("Visit", "Patient", "\xff", "{'ID':'7','zc_display_value':''}");
    release();
}

static void test_value_format_dates(void **state)
{
    (void)state;
    release();
    set_text(0, "2026-09-07");
    assert_format("Patient", "Born", NULL, "'07-Sep-2026'");
    set_text(0, "2026-09-07 14:42:52");
    assert_format("Patient", "Seen_At", NULL, "'07-Sep-2026 14:42:52'");
    set_text(0, "garbage");
    assert_format("Patient", "Born", NULL, "'garbage'");
}

static void test_value_format_multi(void **state)
{
    (void)state;
    release();
    assert_format("Patient", "Allergies", NULL, "[]");
    set_text(0, "[\"Milk\",\"Nuts\"]");
    assert_format("Patient", "Allergies", NULL, "['Milk','Nuts']");
    set_text(0, "{corrupt");
    assert_format("Patient", "Allergies", NULL, "[]");
}

static void test_value_format_composites(void **state)
{
    (void)state;
    release();
    assert_format("Patient", "Full_Name", NULL,
                  "{'prefix':'','first_name':'','last_name':'','suffix':'','zc_display_value':''}");
    set_text(0, "Dr");
    set_text(2, "Lovelace");
    assert_format("Patient", "Full_Name", NULL,
                  "{'prefix':'Dr','first_name':'','last_name':'Lovelace','suffix':'',"
                  "'zc_display_value':'Dr Lovelace'}");
    release();
    set_text(0, "1 Main St");
    set_text(2, "Springfield");
    set_text(5, "USA");
    set_text(6, "1.5");
    assert_format("Patient", "Home", NULL,
                  "{'address_line_1':'1 Main St','address_line_2':'','district_city':'Springfield',"
                  "'state_province':'','postal_code':'','country':'USA','latitude':'1.5',"
                  "'longitude':'','zc_display_value':'1 Main St, Springfield, USA'}");
    release();
    set_text(0, "https://x.org");
    assert_format("Patient", "Site", NULL,
                  "{'value':'https://x.org','url':'https://x.org','title':''}");
}

static void test_value_format_lookup(void **state)
{
    (void)state;
    release();
    assert_format("Visit", "Patient", NULL, "''");
    set_int(0, 7);
    assert_format("Visit", "Patient", "P-7", "{'ID':'7','zc_display_value':'P-7'}");
    assert_format("Visit", "Patient", NULL, "{'ID':'7','zc_display_value':''}");
    release();
    assert_format("Visit", "Others", NULL, "[]");
    set_text(0, "[1,2]");
    assert_format(
        "Visit", "Others", "[\"a@x.org\",\"b@x.org\"]",
        "[{'ID':'1','zc_display_value':'a@x.org'},{'ID':'2','zc_display_value':'b@x.org'}]");
    assert_format("Visit", "Others", "not json",
                  "[{'ID':'1','zc_display_value':''},{'ID':'2','zc_display_value':''}]");
}

static void test_model_datetime_format_ok(void **state)
{
    char out[32];
    (void)state;
    assert_int_equal(fv_model_datetime_format(app, "2026-09-07 14:42:52", out, sizeof(out)), FV_OK);
    assert_string_equal(out, "07-Sep-2026 14:42:52");
}

static void test_model_datetime_format_bad(void **state)
{
    char out[32];
    (void)state;
    assert_int_equal(fv_model_datetime_format(app, "2026-09-07T14:42:52", out, sizeof(out)),
                     FV_E_INVALID);
    assert_int_equal(fv_model_datetime_format(app, "2026-02-30 14:42:52", out, sizeof(out)),
                     FV_E_INVALID);
    assert_int_equal(fv_model_datetime_format(app, "2026-09-07 14:42:52", out, 12), FV_E_LIMIT);
}

static void test_model_date_formats_all(void **state)
{
    static const struct {
        const char *fmt, *out;
    } cases[] = {{"dd-MMM-yyyy", "07-Sep-2026"}, {"dd-MM-yyyy", "07-09-2026"},
                 {"dd.MM.yyyy", "07.09.2026"},   {"MM-dd-yyyy", "09-07-2026"},
                 {"yyyy-MM-dd", "2026-09-07"},   {"MMM dd,yyyy", "Sep 07,2026"}};
    char out[32];
    int y, m, d;
    (void)state;
    for (size_t i = 0; i < FV_ARRAY_LEN(cases); i++) {
        assert_true(fv_model_date_format_valid(cases[i].fmt));
        assert_int_equal(fv_model_date_write(cases[i].fmt, 2026, 9, 7, out, sizeof(out)), FV_OK);
        assert_string_equal(out, cases[i].out);
        assert_int_equal(fv_model_date_parse(cases[i].fmt, out, strlen(out), &y, &m, &d), FV_OK);
        assert_int_equal(y * 10000 + m * 100 + d, 20260907);
    }
    assert_int_equal(fv_model_date_parse("MMM dd,yyyy", "Sep 07, 2026", 12, &y, &m, &d), FV_OK);
    assert_false(fv_model_date_format_valid("yyyy/MM/dd"));
}

static void test_model_date_valid_leap(void **state)
{
    (void)state;
    assert_true(fv_model_date_valid(2024, 2, 29));
    assert_true(fv_model_date_valid(2000, 2, 29));
    assert_false(fv_model_date_valid(1900, 2, 29));
    assert_false(fv_model_date_valid(2023, 2, 29));
    assert_false(fv_model_date_valid(2023, 4, 31));
    assert_false(fv_model_date_valid(0, 1, 1));
    assert_false(fv_model_date_valid(10000, 1, 1));
}

/* Every allocation failure during parse/format returns cleanly. */
static void test_value_parse_nomem(void **state)
{
    static const struct {
        const char *form, *field, *json;
    } cases[] = {{"Patient", "Allergies", "['Milk','Nuts']"},
                 {"Patient", "Full_Name", "'Ada Lovelace'"},
                 {"Patient", "Home", "{'address_line_1':'x','latitude':1.5}"},
                 {"Visit", "Others", "[1,2,3]"}};
    (void)state;
    for (size_t c = 0; c < FV_ARRAY_LEN(cases); c++) {
        char *j = fixture_json(cases[c].json);
        json_t *in = json_loads(j, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        free(j);
        for (long n = 1;; n++) {
            release();
            fv_mem_fail_at(n, false);
            int rc =
                fv_model_value_parse(app, field(cases[c].form, cases[c].field), in, cols, NULL);
            fv_mem_fail_at(0, false);
            if (rc == FV_OK)
                break;
            assert_int_equal(rc, FV_E_NOMEM);
            assert_all_null();
            assert_true(n < 100);
        }
        json_decref(in);
    }
    release();
}

static void test_model_type_names_and_codes(void **state)
{
    (void)state;
    for (int t = 0; t < FV_FIELD__COUNT; t++)
        assert_int_equal(fv_model_type_from_name(fv_model_type_name((enum fv_field_type)t)), t);
    assert_int_equal(fv_model_type_from_name("colour"), FV_FIELD__COUNT);
    assert_int_equal(fv_model_type_code(field("Patient", "Full_Name")), 29);
    assert_int_equal(fv_model_type_code(field("Visit", "Patient")), 12);
    assert_int_equal(fv_model_type_code(field("Visit", "Others")), 14);
    assert_true(fv_model_link_name_valid("A_1", 3));
    assert_false(fv_model_link_name_valid("1A", 2));
    assert_false(fv_model_link_name_valid("A-1", 3));
    assert_false(fv_model_link_name_valid("", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_field_column_names),
        cmocka_unit_test(test_field_column_errors),
        cmocka_unit_test(test_bidx_list_sql),
        cmocka_unit_test(test_value_parse_single_line_ok),
        cmocka_unit_test(test_value_parse_single_line_too_long),
        cmocka_unit_test(test_value_parse_single_line_control_char),
        cmocka_unit_test(test_value_parse_text_invalid_utf8),
        cmocka_unit_test(test_value_parse_multi_line_ok),
        cmocka_unit_test(test_value_parse_email_ok),
        cmocka_unit_test(test_value_parse_email_bad),
        cmocka_unit_test(test_value_parse_phone_ok),
        cmocka_unit_test(test_value_parse_phone_bad),
        cmocka_unit_test(test_value_parse_error_has_no_value),
        cmocka_unit_test(test_value_parse_number_ok),
        cmocka_unit_test(test_value_parse_number_too_many_digits),
        cmocka_unit_test(test_value_parse_number_bad),
        cmocka_unit_test(test_value_parse_decimal_ok),
        cmocka_unit_test(test_value_parse_decimal_format),
        cmocka_unit_test(test_value_parse_decimal_too_many_digits),
        cmocka_unit_test(test_value_parse_autonumber_refused),
        cmocka_unit_test(test_value_parse_date_ok),
        cmocka_unit_test(test_value_parse_date_bad),
        cmocka_unit_test(test_value_parse_datetime_ok),
        cmocka_unit_test(test_value_parse_datetime_bad),
        cmocka_unit_test(test_value_parse_time_ok),
        cmocka_unit_test(test_value_parse_time_bad),
        cmocka_unit_test(test_value_parse_decision_ok),
        cmocka_unit_test(test_value_parse_decision_bad),
        cmocka_unit_test(test_value_parse_dropdown_ok),
        cmocka_unit_test(test_value_parse_dropdown_not_choice),
        cmocka_unit_test(test_value_parse_multi_select_ok),
        cmocka_unit_test(test_value_parse_multi_select_bad),
        cmocka_unit_test(test_value_parse_url_ok),
        cmocka_unit_test(test_value_parse_url_bad),
        cmocka_unit_test(test_value_parse_name_ok),
        cmocka_unit_test(test_value_parse_name_bad),
        cmocka_unit_test(test_value_parse_address_ok),
        cmocka_unit_test(test_value_parse_address_bad),
        cmocka_unit_test(test_value_parse_lookup_ok),
        cmocka_unit_test(test_value_parse_lookup_bad),
        cmocka_unit_test(test_value_parse_null_and_empty),
        cmocka_unit_test(test_value_parse_text_lookup_multi),
        cmocka_unit_test(test_value_format_scalars),
        cmocka_unit_test(test_value_format_corrupt_text),
        cmocka_unit_test(test_value_format_dates),
        cmocka_unit_test(test_value_format_multi),
        cmocka_unit_test(test_value_format_composites),
        cmocka_unit_test(test_value_format_lookup),
        cmocka_unit_test(test_model_datetime_format_ok),
        cmocka_unit_test(test_model_datetime_format_bad),
        cmocka_unit_test(test_model_date_formats_all),
        cmocka_unit_test(test_model_date_valid_leap),
        cmocka_unit_test(test_value_parse_nomem),
        cmocka_unit_test(test_model_type_names_and_codes),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    release();
    return rc;
}
