/*
 * Unit tests for model/criteria.c: parsing (tree shape, precedence, error
 * positions and messages) and compiling (SQL text and bound parameters,
 * type rules), plus allocation-failure loops.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "model_fixture.h"

/* fv_model_bidx_list_sql for parameter n (a string literal) */
#define BIDX_LIST(n)                                                                               \
    "(substr(?" n ", 1, 16), substr(?" n ", 17, 16), substr(?" n ", 33, 16), substr(?" n           \
    ", 49, 16), substr(?" n ", 65, 16), substr(?" n ", 81, 16), substr(?" n                        \
    ", 97, 16), substr(?" n ", 113, 16))"

static struct fv_app *app;
static struct fv_error err;

static int setup(void **state)
{
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
    return 0;
}

/* Parse and compare the dumped tree. */
static void assert_tree(const char *text, const char *want)
{
    struct fv_criteria *c = NULL;
    struct fv_buf b;
    fv_error_init(&err);
    int rc = fv_model_criteria_parse(text, strlen(text), &c, &err);
    if (rc != FV_OK)
        fail_msg("parse '%s': %s", text, err.msg);
    fv_buf_init(&b, 1 << 16);
    assert_int_equal(fv_model_criteria_dump(c, &b), FV_OK);
    assert_string_equal(b.p, want);
    fv_buf_release(&b);
    fv_model_criteria_free(c);
}

/* Parse must fail at pos with msg. */
static void assert_parse_err(const char *text, size_t len, size_t pos, const char *msg)
{
    struct fv_criteria *c = NULL;
    fv_error_init(&err);
    assert_int_equal(fv_model_criteria_parse(text, len, &c, &err), FV_E_CRITERIA);
    assert_null(c);
    assert_int_equal(err.code, FV_E_CRITERIA);
    assert_int_equal(err.pos, pos);
    assert_string_equal(err.msg, msg);
}

static struct fv_sql_where w;

/* Compile text against form; returns rc, w holds the result. */
static int compile(const char *form, const char *text)
{
    struct fv_criteria *c = NULL;
    fv_model_where_release(&w);
    fv_model_where_init(&w);
    fv_error_init(&err);
    int rc = fv_model_criteria_parse(text, strlen(text), &c, &err);
    if (rc != FV_OK)
        fail_msg("parse '%s': %s", text, err.msg);
    rc = fv_model_criteria_compile(c, app, fv_model_app_form(app, form), &w, &err);
    fv_model_criteria_free(c);
    return rc;
}

static void assert_sql(const char *form, const char *text, const char *sql)
{
    int rc = compile(form, text);
    if (rc != FV_OK)
        fail_msg("compile '%s': %s", text, err.msg);
    assert_string_equal(w.sql.p, sql);
}

static void assert_param_text(size_t i, const char *want)
{
    assert_true(i < w.n_params);
    assert_int_equal(w.params[i].type, FV_SQL_TEXT);
    assert_string_equal(w.params[i].s, want);
}

static void assert_param_int(size_t i, int64_t want)
{
    assert_true(i < w.n_params);
    assert_int_equal(w.params[i].type, FV_SQL_INT);
    assert_int_equal(w.params[i].i, want);
}

static void assert_compile_err(const char *form, const char *text, size_t pos, const char *msg)
{
    assert_int_equal(compile(form, text), FV_E_CRITERIA);
    assert_int_equal(err.pos, pos);
    assert_string_equal(err.msg, msg);
    assert_int_equal(w.n_params, 0);
}

/* ---------------------------------------------------------------- parse */

static void test_criteria_parse_simple(void **state)
{
    (void)state;
    assert_tree("A == \"x\"", "(== A \"x\")");
    assert_tree("Number==1", "(== Number 1)");
    assert_tree("  Total >= 100.00 ", "(>= Total 100.00)");
    assert_tree("T != -3", "(!= T -3)");
    assert_tree("D < '01-Jan-2024'", "(< D '01-Jan-2024')");
    assert_tree("D <= 'Sep 07,2026 14:42:52'", "(<= D 'Sep 07,2026 14:42:52')");
    assert_tree("B == true||B==false", "(|| (== B true) (== B false))");
}

static void test_criteria_parse_precedence(void **state)
{
    (void)state;
    assert_tree("A == 1 || B == 2 && C == 3", "(|| (== A 1) (&& (== B 2) (== C 3)))");
    assert_tree("A == 1 && B == 2 || C == 3", "(|| (&& (== A 1) (== B 2)) (== C 3))");
    assert_tree("!A == 1 && B == 2", "(&& (! (== A 1)) (== B 2))");
    assert_tree("(A == 1 || B == 2) && C == 3", "(&& (|| (== A 1) (== B 2)) (== C 3))");
    assert_tree("!(A == 1 || !B == 2)", "(! (|| (== A 1) (! (== B 2))))");
    assert_tree("A==1&&B==2&&C==3", "(&& (== A 1) (== B 2) (== C 3))");
    assert_tree("((A == 1))", "(== A 1)");
}

static void test_criteria_parse_null_forms(void **state)
{
    (void)state;
    assert_tree("ID!=null", "(is not null ID)");
    assert_tree("A == null", "(is null A)");
    assert_tree("A is null", "(is null A)");
    assert_tree("A is  not\tnull", "(is not null A)");
}

static void test_criteria_parse_functions_and_paths(void **state)
{
    (void)state;
    assert_tree("Full_Name.last_name.startsWith(\"Mc\")",
                "(.startsWith Full_Name.last_name \"Mc\")");
    assert_tree("Notes.contains ( \"allergy\" ) && !(Status == \"Closed\")",
                "(&& (.contains Notes \"allergy\") (! (== Status \"Closed\")))");
    assert_tree("A.endsWith(\"x\")", "(.endsWith A \"x\")");
    assert_tree("Customer.contains == \"x\"", "(== Customer.contains \"x\")");
    assert_tree("A.b.c.d == 1", "(== A.b.c.d 1)");
}

static void test_criteria_parse_string_escapes(void **state)
{
    (void)state;
    assert_tree("A == \"say \\\"hi\\\" \\\\ ok\"", "(== A \"say \"hi\" \\ ok\")");
    assert_tree("A == \"\"", "(== A \"\")");
    assert_tree("A == \"caf\xC3\xA9 && || ( ) 'x'\"", "(== A \"caf\xC3\xA9 && || ( ) 'x'\")");
}

static void test_criteria_parse_errors(void **state)
{
    (void)state;
    assert_parse_err("", 0, 0, "at 0: expected a field name, '(' or '!' but found the end");
    assert_parse_err("A ==", 4, 4, "at 4: expected a value after '=='");
    assert_parse_err("A = 1", 5, 2, "at 2: expected '==' (equality is written '==', not '=')");
    assert_parse_err("A == \"abc", 9, 5, "at 5: unterminated string (missing closing '\"')");
    assert_parse_err("A == \"a\\n\"", 10, 7,
                     "at 7: unknown escape in string (only \\\" and \\\\ are allowed)");
    assert_parse_err("(A == 1", 7, 7, "at 7: expected ')' to close the '(' at 0");
    assert_parse_err("A == 1)", 7, 6, "at 6: unmatched ')'");
    assert_parse_err("A == 1 &&", 9, 9, "at 9: expected a test after '&&' at 7");
    assert_parse_err("A == 1 ||  ", 11, 11, "at 11: expected a test after '||' at 7");
    assert_parse_err("A < null", 8, 4, "at 4: null can only be compared with == or !=");
    assert_parse_err("A == 1 B == 2", 13, 7, "at 7: expected '&&', '||' or the end");
    assert_parse_err("A.contains(x)", 13, 11, "at 11: expected a value after '.contains('");
    assert_parse_err("A.contains(true)", 16, 11,
                     "at 11: expected a string in double quotes after '.contains('");
    assert_parse_err("A.contains(\"x\"", 14, 14, "at 14: expected ')' to close '.contains('");
    assert_parse_err("A is nul", 8, 5, "at 5: expected 'null' after 'is'");
    assert_parse_err("1 == A", 6, 0, "at 0: expected a field name, '(' or '!' but found this");
    assert_parse_err("A == 1.", 7, 7, "at 7: expected a digit after the decimal point");
    assert_parse_err("A == 12abc", 10, 7, "at 7: unexpected character in a number");
    assert_parse_err("A == -", 6, 5, "at 5: expected a number after '-'");
    assert_parse_err("A == ''", 7, 5,
                     "at 5: expected a date like '01-Jan-2024' between single quotes");
    assert_parse_err("A == '01-Jan-2024", 17, 5, "at 5: unterminated date (missing closing \"'\")");
    assert_parse_err("A. == 1", 7, 2, "at 2: expected a name after '.'");
    assert_parse_err("A.b.c.d.e == 1", 14, 8, "at 8: field path has more than 4 parts");
    assert_parse_err("A", 1, 1,
                     "at 1: expected an operator (==, !=, <, <=, >, >=, is null) after 'A'");
    assert_parse_err("A =< 1", 6, 2, "at 2: expected '==' (equality is written '==', not '=')");
    assert_parse_err("!", 1, 1, "at 1: expected a field name, '(' or '!' but found the end");
    assert_parse_err("A == nul", 8, 5, "at 5: expected a value after '=='");
}

static void test_criteria_parse_rejects_bad_bytes(void **state)
{
    (void)state;
    assert_parse_err("A == \"\xC3\x28\"", 8, 6, "at 6: not valid UTF-8");
    assert_parse_err("A == \"a\0b\"", 10, 7, "at 7: NUL character not allowed");
    assert_parse_err("A == 1 \x01", 8, 7, "at 7: expected '&&', '||' or the end");
}

static void test_criteria_parse_limits(void **state)
{
    char buf[5000];
    size_t n = 0;
    (void)state;

    /* 4097 bytes */
    memset(buf, ' ', 4097);
    memcpy(buf, "A == 1", 6);
    assert_parse_err(buf, 4097, 4096, "at 4096: criteria longer than 4096 bytes");

    /* depth: 32 parentheses parse, 33 do not */
    n = 0;
    for (int i = 0; i < 32; i++)
        buf[n++] = '(';
    memcpy(buf + n, "A == 1", 6);
    n += 6;
    for (int i = 0; i < 32; i++)
        buf[n++] = ')';
    buf[n] = '\0';
    assert_tree(buf, "(== A 1)");
    n = 0;
    for (int i = 0; i < 33; i++)
        buf[n++] = '(';
    buf[n] = '\0';
    assert_parse_err(buf, n, 32, "at 32: nested deeper than 32 levels");
    n = 0;
    for (int i = 0; i < 33; i++)
        buf[n++] = '!';
    memcpy(buf + n, "A == 1", 7);
    assert_parse_err(buf, strlen(buf), 32, "at 32: nested deeper than 32 levels");

    /* 256 tests parse, 257 do not */
    n = 0;
    for (int i = 0; i < 257; i++) {
        memcpy(buf + n, "A==1||", 6);
        n += 6;
    }
    buf[n - 2] = '\0';
    assert_parse_err(buf, n - 2, 256 * 6, "at 1536: more than 256 tests");
    assert_tree("A==1", "(== A 1)");
    buf[256 * 6 - 2] = '\0';
    struct fv_criteria *c = NULL;
    assert_int_equal(fv_model_criteria_parse(buf, strlen(buf), &c, NULL), FV_OK);
    fv_model_criteria_free(c);

    /* 65-byte name */
    memset(buf, 'a', 65);
    memcpy(buf + 65, " == 1", 6);
    assert_parse_err(buf, strlen(buf), 0, "at 0: name longer than 64 bytes");
}

/* -------------------------------------------------------------- compile */

static void test_criteria_compile_text(void **state)
{
    (void)state;
    assert_sql("Patient", "Patient_Number == \"P-1\"", "(\"c_Patient_Number\" IS ?)");
    assert_int_equal(w.n_params, 1);
    assert_param_text(0, "P-1");
    assert_sql("Patient", "Patient_Number != \"P-1\"", "(\"c_Patient_Number\" IS NOT ?)");
    assert_sql("Patient", "Patient_Number == 123", "(\"c_Patient_Number\" IS ?)");
    assert_param_text(0, "123");
    assert_sql("Patient", "Blood_Type != null", "(\"c_Blood_Type\" IS NOT NULL)");
    assert_int_equal(w.n_params, 0);
    assert_sql("Patient", "Notes is null", "(\"c_Notes\" IS NULL)");
}

static void test_criteria_compile_string_functions(void **state)
{
    (void)state;
    assert_sql("Patient", "Notes.contains(\"50%_\")", "(instr(\"c_Notes\", ?) > 0)");
    assert_param_text(0, "50%_");
    assert_sql("Patient", "Bio.startsWith(\"jo\")", "(instr(\"c_Bio\", ?) = 1)");
    assert_sql("Patient", "Bio.endsWith(\"@x.org\")", "(substr(\"c_Bio\", -length(?)) = ?)");
    assert_int_equal(w.n_params, 2);
    assert_param_text(0, "@x.org");
    assert_param_text(1, "@x.org");
    assert_sql("Patient", "Notes.contains(\"\")", "(\"c_Notes\" IS NOT NULL)");
    assert_sql("Patient", "Full_Name.last_name.startsWith(\"Mc\")",
               "(instr(\"c_Full_Name__last_name\", ?) = 1)");
    assert_sql("Patient", "Site.contains(\"zoho\")", "(instr(\"c_Site__url\", ?) > 0)");
    assert_sql("Patient", "Added_User.contains(\"bob\")", "(instr(\"Added_User\", ?) > 0)");
}

static void test_criteria_compile_numbers(void **state)
{
    (void)state;
    assert_sql("Patient", "Age >= 18 && Age < 65", "((\"c_Age\" >= ? AND \"c_Age\" < ?))");
    assert_param_int(0, 18);
    assert_param_int(1, 65);
    assert_sql("Patient", "Weight > 70.5", "(\"c_Weight\" > ?)");
    assert_param_int(0, 705);
    assert_sql("Patient", "Score <= \"99\"", "(\"c_Score\" <= ?)");
    assert_param_int(0, 9900);
    assert_sql("Patient", "Ticket == \"P-101\"", "(\"c_Ticket\" IS ?)");
    assert_param_int(0, 101);
    assert_sql("Patient", "Ticket > 100", "(\"c_Ticket\" > ?)");
    assert_param_int(0, 100);
    assert_sql("Patient", "ID != null", "(\"ID\" IS NOT NULL)");
    assert_sql("Patient", "ID == \"3894000000012001\"", "(\"ID\" IS ?)");
    assert_param_int(0, 3894000000012001);
}

static void test_criteria_compile_dates(void **state)
{
    (void)state;
    assert_sql("Patient", "Born >= '01-Jan-2024' && Born < '2024-02-01'",
               "((\"c_Born\" >= ? AND \"c_Born\" < ?))");
    assert_param_text(0, "2024-01-01");
    assert_param_text(1, "2024-02-01");
    assert_sql("Patient", "Seen_At < '07-Sep-2026 14:42:52'", "(\"c_Seen_At\" < ?)");
    assert_param_text(0, "2026-09-07 14:42:52");
    assert_sql("Patient", "Seen_At == '07-Sep-2026'", "(substr(\"c_Seen_At\", 1, 10) IS ?)");
    assert_param_text(0, "2026-09-07");
    assert_sql("Patient", "Added_Time >= '01-Jan-2024'", "(substr(\"Added_Time\", 1, 10) >= ?)");
    assert_sql("Patient", "Wake > '7:30'", "(\"c_Wake\" > ?)");
    assert_param_text(0, "07:30:00");
}

static void test_criteria_compile_choices_and_bool(void **state)
{
    (void)state;
    assert_sql("Patient", "Allergies.contains(\"Nuts\")",
               "(EXISTS (SELECT 1 FROM json_each(\"c_Allergies\") WHERE value = ?))");
    assert_param_text(0, "Nuts");
    assert_sql("Patient", "!Allergies.contains(\"Nuts\")",
               "(NOT (EXISTS (SELECT 1 FROM json_each(\"c_Allergies\") WHERE value = ?)))");
    assert_sql("Patient", "Allergies == null", "(\"c_Allergies\" IS NULL)");
    assert_sql("Patient", "Active == true", "(coalesce(\"c_Active\", 0) = ?)");
    assert_param_int(0, 1);
    assert_sql("Patient", "Active != false", "(coalesce(\"c_Active\", 0) <> ?)");
    assert_param_int(0, 0);
    assert_sql("Patient", "Blood_Type == \"A+\" || Gender == \"F\"",
               "((\"c_Blood_Type\" IS ? OR \"c_Gender\" IS ?))");
}

static void test_criteria_compile_composites(void **state)
{
    (void)state;
    assert_sql("Patient", "Full_Name.last_name == \"Smith\"", "(\"c_Full_Name__last_name\" IS ?)");
    assert_sql("Patient", "Home.postal_code == \"123\"", "(\"c_Home__postal_code\" IS ?)");
    assert_sql("Patient", "Full_Name == null",
               "((\"c_Full_Name__prefix\" IS NULL AND \"c_Full_Name__first_name\" IS NULL AND "
               "\"c_Full_Name__last_name\" IS NULL AND \"c_Full_Name__suffix\" IS NULL))");
    assert_sql("Patient", "Site.title is not null", "(\"c_Site__title\" IS NOT NULL)");
}

static void test_criteria_compile_lookups(void **state)
{
    (void)state;
    assert_sql("Visit", "Patient == 3894000000012001", "(\"c_Patient\" IS ?)");
    assert_param_int(0, 3894000000012001);
    assert_sql("Visit", "Patient == \"12\"", "(\"c_Patient\" IS ?)");
    assert_param_int(0, 12);
    assert_sql(
        "Visit", "Patient.Phone == \"555\"",
        "(\"c_Patient\" IN (SELECT \"ID\" FROM \"f_clinic__Patient\" WHERE \"c_Phone\" IS ?))");
    assert_param_text(0, "555");
    /* an encrypted field of the target: its blind index (test_criteria_compile_encrypted) */
    assert_sql("Visit", "Patient.Email == \"a@b.co\"",
               "(\"c_Patient\" IN (SELECT \"ID\" FROM \"f_clinic__Patient\" WHERE "
               "\"c_Email__bidx\" IN " BIDX_LIST("1") "))");
    assert_int_equal(w.params[0].type, FV_SQL_SECRET);
    assert_sql("Visit", "Patient.Full_Name.last_name.startsWith(\"Mc\")",
               "(\"c_Patient\" IN (SELECT \"ID\" FROM \"f_clinic__Patient\" WHERE "
               "instr(\"c_Full_Name__last_name\", ?) = 1))");
    assert_sql("Visit", "Others == 5",
               "(EXISTS (SELECT 1 FROM json_each(\"c_Others\") WHERE value = ?))");
    assert_param_int(0, 5);
    assert_sql("Visit", "Others.contains(\"5\")",
               "(EXISTS (SELECT 1 FROM json_each(\"c_Others\") WHERE value = ?))");
    assert_sql("Visit", "Others.Age > 60",
               "(EXISTS (SELECT 1 FROM json_each(\"c_Others\") WHERE value IN (SELECT \"ID\" FROM "
               "\"f_clinic__Patient\" WHERE \"c_Age\" > ?)))");
    assert_sql("Visit", "Patient.ID == 3",
               "(\"c_Patient\" IN (SELECT \"ID\" FROM \"f_clinic__Patient\" "
               "WHERE \"ID\" IS ?))");
    assert_sql("Visit", "Fee >= 100.5 && Patient != null",
               "((\"c_Fee\" >= ? AND \"c_Patient\" IS NOT NULL))");
    assert_param_int(0, 10050);
}

static void test_criteria_compile_values_never_in_sql(void **state)
{
    (void)state;
    assert_sql("Patient", "Patient_Number == \"x\\\"); DROP TABLE f_Patient; --\"",
               "(\"c_Patient_Number\" IS ?)");
    assert_param_text(0, "x\"); DROP TABLE f_Patient; --");
    assert_sql("Patient", "Notes.contains(\"' OR 1=1 --\")", "(instr(\"c_Notes\", ?) > 0)");
}

/* The blind-index message the compiler must bind for Email == text. */
static void assert_param_bidx(size_t i, const char *form, const char *field, const char *text)
{
    const struct fv_field *f = fv_model_form_field(fv_model_app_form(app, form), field);
    struct fv_sqlval v = {.type = FV_SQL_TEXT, .s = (char *)text, .len = strlen(text)};
    uint8_t *enc = NULL, *msg = NULL;
    size_t enc_len = 0, msg_len = 0;
    assert_non_null(f);
    assert_int_equal(fv_model_value_encode(f, &v, &enc, &enc_len), FV_OK);
    assert_int_equal(
        fv_model_field_bidx_message("clinic", form, field, enc, enc_len, &msg, &msg_len), FV_OK);
    assert_true(i < w.n_params);
    assert_int_equal(w.params[i].type, FV_SQL_SECRET);
    assert_int_equal(w.params[i].len, msg_len);
    assert_memory_equal(w.params[i].s, msg, msg_len);
    fv_free(enc);
    fv_free(msg);
}

static void test_criteria_compile_encrypted(void **state)
{
    (void)state;
    /* == and != go to the blind index, one parameter for all key versions */
    assert_sql("Patient", "Email == \"a@b.co\"", "(\"c_Email__bidx\" IN " BIDX_LIST("1") ")");
    assert_int_equal(w.n_params, 1);
    assert_param_bidx(0, "Patient", "Email", "a@b.co");
    /* the literal never appears as a plain parameter or in the SQL */
    assert_null(strstr(w.sql.p, "a@b.co"));
    assert_sql("Patient", "Email != \"a@b.co\"",
               "((\"c_Email__bidx\" IS NULL OR \"c_Email__bidx\" NOT IN " BIDX_LIST("1") "))");
    assert_param_bidx(0, "Patient", "Email", "a@b.co");
    /* null tests look at the sealed column */
    assert_sql("Patient", "Email == null", "(\"c_Email\" IS NULL)");
    assert_int_equal(w.n_params, 0);
    assert_sql("Patient", "Email is not null", "(\"c_Email\" IS NOT NULL)");
    /* mixed with fields in clear */
    assert_sql("Patient", "Age > 3 && !(Email == \"x\")",
               "((\"c_Age\" > ? AND NOT (\"c_Email__bidx\" IN " BIDX_LIST("2") ")))");
    assert_param_int(0, 3);
    assert_param_bidx(1, "Patient", "Email", "x");
    /* the list names its parameter; anonymous placeholders after it count on */
    assert_sql("Patient", "Email == \"x\" && Age > 3",
               "((\"c_Email__bidx\" IN " BIDX_LIST("1") " AND \"c_Age\" > ?))");
    assert_param_bidx(0, "Patient", "Email", "x");
    assert_param_int(1, 3);

    /* everything that would need the plaintext is refused, with the position */
    assert_compile_err("Patient", "Email.contains(\"a\")", 6,
                       "at 6: field 'Email' is encrypted: only == and != criteria are supported, "
                       "not '.contains'");
    assert_compile_err("Patient", "Email.startsWith(\"a\")", 6,
                       "at 6: field 'Email' is encrypted: only == and != criteria are supported, "
                       "not '.startsWith'");
    assert_compile_err("Patient", "Email.endsWith(\"a\")", 6,
                       "at 6: field 'Email' is encrypted: only == and != criteria are supported, "
                       "not '.endsWith'");
    assert_compile_err("Patient", "Age == 1 || Email < \"b\"", 18,
                       "at 18: field 'Email' is encrypted: only == and != criteria are supported, "
                       "not '<'");
    assert_compile_err("Patient", "Email >= \"b\"", 6,
                       "at 6: field 'Email' is encrypted: only == and != criteria are supported, "
                       "not '>='");
    assert_compile_err("Visit", "Patient.Email > \"b\"", 14,
                       "at 14: field 'Email' is encrypted: only == and != criteria are supported, "
                       "not '>'");
    assert_compile_err("Patient", "Email.user == \"b\"", 0,
                       "at 0: field 'Email' is encrypted: its parts cannot be searched");
}

static void test_criteria_compile_errors(void **state)
{
    (void)state;
    assert_compile_err("Patient", "Nope == 1", 0, "at 0: form 'Patient' has no field 'Nope'");
    assert_compile_err("Patient", "Allergies < 3", 10,
                       "at 10: operator '<' is not valid for 'Allergies' (multi_select)");
    assert_compile_err("Patient", "Patient_Number > \"a\"", 15,
                       "at 15: operator '>' is not valid for 'Patient_Number' (single_line)");
    assert_compile_err("Patient", "Age == \"abc\"", 7, "at 7: field 'Age': not a whole number");
    assert_compile_err("Patient", "Age == 1.5", 7, "at 7: field 'Age': not a whole number");
    assert_compile_err("Patient", "Age == 1234567890123456", 7,
                       "at 7: field 'Age': too many digits");
    assert_compile_err("Patient", "Weight == 1.25", 10,
                       "at 10: field 'Weight': not a number with at most 1 decimal places");
    assert_compile_err("Patient", "Born == 5", 8,
                       "at 8: 'Born' needs a date in single quotes, like '01-Jan-2024'");
    assert_compile_err("Patient", "Born == '31-Feb-2024'", 8,
                       "at 8: field 'Born': not a valid date");
    assert_compile_err("Patient", "Active == 1", 10, "at 10: 'Active' needs true or false");
    assert_compile_err("Patient", "Age == true", 7, "at 7: 'Age' needs a number");
    assert_compile_err("Patient", "Patient_Number == '01-Jan-2024'", 18,
                       "at 18: 'Patient_Number' needs a string in double quotes");
    assert_compile_err("Patient", "Allergies == \"Nuts\"", 10,
                       "at 10: operator '==' is not valid for 'Allergies' (multi_select); use "
                       ".contains()");
    assert_compile_err("Patient", "Allergies.startsWith(\"N\")", 10,
                       "at 10: operator '.startsWith' is not valid for 'Allergies' (multi_select)");
    assert_compile_err("Patient", "Age.contains(\"1\")", 4,
                       "at 4: operator '.contains' is not valid for 'Age' (number)");
    assert_compile_err("Patient", "Full_Name.middle == \"x\"", 0,
                       "at 0: field 'Full_Name' has no part 'middle'");
    assert_compile_err("Patient", "Full_Name == \"x\"", 0,
                       "at 0: field 'Full_Name' needs a part, like 'Full_Name.last_name'");
    assert_compile_err("Patient", "Age.x == 1", 0, "at 0: field 'Age' (number) has no part 'x'");
    assert_compile_err("Patient", "ID.x == 1", 0, "at 0: system field 'ID' has no parts");
    assert_compile_err("Patient", "ID == \"abc\"", 6, "at 6: 'ID' needs a whole number");
    assert_compile_err("Visit", "Patient == 0", 11, "at 11: 'Patient' needs a record ID");
    assert_compile_err("Visit", "Patient == \"-5\"", 11, "at 11: 'Patient' needs a record ID");
    assert_compile_err("Visit", "Patient < 5", 8,
                       "at 8: operator '<' is not valid for 'Patient' (lookup)");
    assert_compile_err("Visit", "Patient.Nope == 1", 0,
                       "at 0: form 'Patient' has no field 'Patient.Nope'");
    assert_compile_err("Patient", "Age == 1 && Nope == 2", 12,
                       "at 12: form 'Patient' has no field 'Nope'");
}

static void test_criteria_compile_error_rolls_back(void **state)
{
    struct fv_criteria *a = NULL, *b = NULL;
    (void)state;
    fv_model_where_release(&w);
    fv_model_where_init(&w);
    assert_int_equal(fv_model_criteria_parse("Age == 1", 8, &a, NULL), FV_OK);
    assert_int_equal(fv_model_criteria_parse("Age == 2 && Nope == 1", 21, &b, NULL), FV_OK);
    const struct fv_form *form = fv_model_app_form(app, "Patient");
    assert_int_equal(fv_model_criteria_compile(a, app, form, &w, NULL), FV_OK);
    assert_int_equal(fv_model_criteria_compile(b, app, form, &w, NULL), FV_E_CRITERIA);
    assert_string_equal(w.sql.p, "(\"c_Age\" IS ?)");
    assert_int_equal(w.n_params, 1);
    assert_int_equal(fv_model_criteria_compile(a, app, form, &w, NULL), FV_OK);
    assert_string_equal(w.sql.p, "(\"c_Age\" IS ?)(\"c_Age\" IS ?)");
    assert_int_equal(w.n_params, 2);
    fv_model_criteria_free(a);
    fv_model_criteria_free(b);
}

/* Link names of the maximum length make identifiers longer than 64 bytes. */
static void test_criteria_compile_long_names(void **state)
{
    static const char l64[] = "L234567890123456789012345678901234567890123456789012345678901234";
    char json[2048], text[512], want[1024];
    struct fv_error e;
    struct fv_criteria *c = NULL;
    struct fv_sql_where lw;
    (void)state;
    assert_int_equal(strlen(l64), 64);
    (void)snprintf(
        json, sizeof(json),
        "{'format':1,'link_name':'a','forms':[{'link_name':'%s','fields':["
        "{'link_name':'%s','type':'name'},{'link_name':'N','type':'number'},"
        "{'link_name':'K','type':'lookup','lookup':{'form':'%s','display_field':'N'}}]}],"
        "'reports':[{'link_name':'R','form':'%s','criteria':'%s.last_name == null'}]}",
        l64, l64, l64, l64, l64);
    struct fv_app *la = fixture_parse(json, &e);
    if (la == NULL)
        fail_msg("%s", e.msg);
    (void)snprintf(text, sizeof(text), "K.%s.last_name.startsWith(\"x\")", l64);
    assert_int_equal(fv_model_criteria_parse(text, strlen(text), &c, NULL), FV_OK);
    fv_model_where_init(&lw);
    assert_int_equal(fv_model_criteria_compile(c, la, &la->forms[0], &lw, NULL), FV_OK);
    (void)snprintf(
        want, sizeof(want),
        "(\"c_K\" IN (SELECT \"ID\" FROM \"f_a__%s\" WHERE instr(\"c_%s__last_name\", ?) "
        "= 1))",
        l64, l64);
    assert_string_equal(lw.sql.p, want);
    fv_model_where_release(&lw);
    fv_model_criteria_free(c);
    fv_model_app_free(la);
}

static void test_criteria_parse_nomem(void **state)
{
    static const char text[] =
        "(Age >= 18 && !(Blood_Type == \"A+\")) || Full_Name.last_name.startsWith(\"Mc\") || "
        "Born < '01-Jan-2024' || Allergies.contains(\"Nuts\")";
    (void)state;
    for (long n = 1;; n++) {
        struct fv_criteria *c = NULL;
        fv_mem_fail_at(n, false);
        int rc = fv_model_criteria_parse(text, strlen(text), &c, NULL);
        if (rc == FV_OK) {
            fv_mem_fail_at(0, false);
            /* then every failure point of the compile */
            for (long k = 1;; k++) {
                struct fv_sql_where cw;
                fv_model_where_init(&cw);
                fv_mem_fail_at(k, false);
                rc =
                    fv_model_criteria_compile(c, app, fv_model_app_form(app, "Patient"), &cw, NULL);
                fv_mem_fail_at(0, false);
                fv_model_where_release(&cw);
                if (rc == FV_OK)
                    break;
                assert_int_equal(rc, FV_E_NOMEM);
                assert_true(k < 1000);
            }
            fv_model_criteria_free(c);
            break;
        }
        fv_mem_fail_at(0, false);
        assert_int_equal(rc, FV_E_NOMEM);
        assert_null(c);
        assert_true(n < 1000);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_criteria_parse_simple),
        cmocka_unit_test(test_criteria_parse_precedence),
        cmocka_unit_test(test_criteria_parse_null_forms),
        cmocka_unit_test(test_criteria_parse_functions_and_paths),
        cmocka_unit_test(test_criteria_parse_string_escapes),
        cmocka_unit_test(test_criteria_parse_errors),
        cmocka_unit_test(test_criteria_parse_rejects_bad_bytes),
        cmocka_unit_test(test_criteria_parse_limits),
        cmocka_unit_test(test_criteria_compile_text),
        cmocka_unit_test(test_criteria_compile_string_functions),
        cmocka_unit_test(test_criteria_compile_numbers),
        cmocka_unit_test(test_criteria_compile_dates),
        cmocka_unit_test(test_criteria_compile_choices_and_bool),
        cmocka_unit_test(test_criteria_compile_composites),
        cmocka_unit_test(test_criteria_compile_lookups),
        cmocka_unit_test(test_criteria_compile_values_never_in_sql),
        cmocka_unit_test(test_criteria_compile_encrypted),
        cmocka_unit_test(test_criteria_compile_errors),
        cmocka_unit_test(test_criteria_compile_error_rolls_back),
        cmocka_unit_test(test_criteria_compile_long_names),
        cmocka_unit_test(test_criteria_parse_nomem),
    };
    fv_model_where_init(&w);
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    fv_model_where_release(&w);
    return rc;
}
