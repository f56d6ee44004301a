/*
 * model/criteria.c: the criteria language (docs/criteria.md). A hand-written
 * recursive-descent parser builds a syntax tree; the compiler turns it into
 * an SQL WHERE fragment whose every literal is a bound parameter.
 *
 * Grammar (precedence ! > && > ||, parentheses win):
 *   expr  := and { "||" and }
 *   and   := unary { "&&" unary }
 *   unary := "!" unary | atom
 *   atom  := "(" expr ")" | test
 *   test  := path relop value | path "." strfn "(" value ")"
 *          | path ("==" | "!=") "null" | path "is" ["not"] "null"
 *
 * Security: identifiers in the SQL text come only from validated definitions
 * (link names, fixed part and system names) and are always double-quoted;
 * values never enter the SQL text.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "model/model_int.h"

enum node_kind { N_AND, N_OR, N_NOT, N_TEST };

enum op {
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_CONTAINS,
    OP_STARTS,
    OP_ENDS,
    OP_IS_NULL,
    OP_NOT_NULL
};

enum lit_kind { L_NONE, L_STRING, L_NUMBER, L_DATE, L_TRUE, L_FALSE };

static const char *const op_text[] = {
    [OP_EQ] = "==",
    [OP_NE] = "!=",
    [OP_LT] = "<",
    [OP_LE] = "<=",
    [OP_GT] = ">",
    [OP_GE] = ">=",
    [OP_CONTAINS] = ".contains",
    [OP_STARTS] = ".startsWith",
    [OP_ENDS] = ".endsWith",
    [OP_IS_NULL] = "is null",
    [OP_NOT_NULL] = "is not null",
};

struct cnode {
    enum node_kind kind;
    size_t pos;
    /* N_AND, N_OR: kids[0..n_kids); N_NOT: kids[0] */
    struct cnode **kids;
    size_t n_kids;
    /* N_TEST */
    char seg[FV_MODEL_CRITERIA_MAX_SEGS][FV_MODEL_LINK_MAX + 1];
    size_t n_seg;
    enum op op;
    size_t op_pos;
    enum lit_kind lit;
    char *lit_s; /* unescaped text for L_STRING, L_NUMBER, L_DATE */
    size_t lit_len;
    size_t lit_pos;
};

struct fv_criteria {
    struct cnode *root;
};

/* ------------------------------------------------------------------ tree */

static void node_free(struct cnode *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n_kids; i++)
        node_free(n->kids[i]);
    fv_free(n->kids);
    fv_free(n->lit_s);
    fv_free(n);
}

void fv_model_criteria_free(struct fv_criteria *c)
{
    if (c == NULL)
        return;
    node_free(c->root);
    fv_free(c);
}

static struct cnode *node_new(enum node_kind kind, size_t pos)
{
    struct cnode *n = fv_calloc(1, sizeof(*n));
    if (n != NULL) {
        n->kind = kind;
        n->pos = pos;
    }
    return n;
}

/* Append kid to n (takes ownership of kid, also on failure). */
static int node_add(struct cnode *n, struct cnode *kid)
{
    struct cnode **k = fv_realloc(n->kids, (n->n_kids + 1) * sizeof(*k));
    if (k == NULL) {
        node_free(kid);
        return FV_E_NOMEM;
    }
    n->kids = k;
    n->kids[n->n_kids++] = kid;
    return FV_OK;
}

/* ---------------------------------------------------------------- parser */

struct parser {
    const char *s;
    size_t len;
    size_t i;
    int depth;
    int tests;
    struct fv_error *e;
};

static int perr(struct parser *p, size_t pos, const char *fmt, ...) FV_PRINTF(3, 4);

static int perr(struct parser *p, size_t pos, const char *fmt, ...)
{
    char msg[FV_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return fv_error_set(p->e, FV_E_CRITERIA, pos, "at %zu: %s", pos, msg);
}

static void skip_ws(struct parser *p)
{
    while (p->i < p->len &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static bool at(const struct parser *p, const char *tok)
{
    size_t n = strlen(tok);
    return p->len - p->i >= n && memcmp(p->s + p->i, tok, n) == 0;
}

static bool ident_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool ident_char(char c)
{
    return ident_start(c) || (c >= '0' && c <= '9') || c == '_';
}

/* Length of the identifier at p->i (0 if none). */
static size_t ident_len(const struct parser *p)
{
    size_t n = 0;
    if (p->i >= p->len || !ident_start(p->s[p->i]))
        return 0;
    while (p->i + n < p->len && ident_char(p->s[p->i + n]))
        n++;
    return n;
}

/* The keyword kw at p->i as a whole word. */
static bool at_word(const struct parser *p, const char *kw)
{
    size_t n = strlen(kw);
    return at(p, kw) && (p->i + n == p->len || !ident_char(p->s[p->i + n]));
}

/* What the error message calls the character at pos. */
static const char *describe_at(const struct parser *p)
{
    return p->i >= p->len ? "the end" : "this";
}

static int parse_string(struct parser *p, struct cnode *t)
{
    size_t start = p->i;
    char *out;
    size_t o = 0;

    p->i++; /* opening quote */
    out = fv_malloc(p->len - p->i + 1);
    if (out == NULL)
        return FV_E_NOMEM;
    for (;;) {
        if (p->i >= p->len) {
            fv_free(out);
            return perr(p, start, "unterminated string (missing closing '\"')");
        }
        char c = p->s[p->i];
        if (c == '"') {
            p->i++;
            break;
        }
        if (c == '\\') {
            if (p->i + 1 < p->len && (p->s[p->i + 1] == '"' || p->s[p->i + 1] == '\\')) {
                out[o++] = p->s[p->i + 1];
                p->i += 2;
                continue;
            }
            fv_free(out);
            return perr(p, p->i, "unknown escape in string (only \\\" and \\\\ are allowed)");
        }
        out[o++] = c;
        p->i++;
    }
    out[o] = '\0';
    t->lit = L_STRING;
    t->lit_s = out;
    t->lit_len = o;
    return FV_OK;
}

static int parse_value(struct parser *p, struct cnode *t, const char *after)
{
    size_t start;

    skip_ws(p);
    start = p->i;
    t->lit_pos = start;
    if (p->i < p->len && p->s[p->i] == '"')
        return parse_string(p, t);
    if (p->i < p->len && p->s[p->i] == '\'') {
        p->i++;
        const char *q = memchr(p->s + p->i, '\'', p->len - p->i);
        if (q == NULL)
            return perr(p, start, "unterminated date (missing closing \"'\")");
        size_t n = (size_t)(q - (p->s + p->i));
        if (n == 0 || n > 40)
            return perr(p, start, "expected a date like '01-Jan-2024' between single quotes");
        t->lit_s = fv_strndup(p->s + p->i, n);
        if (t->lit_s == NULL)
            return FV_E_NOMEM;
        t->lit = L_DATE;
        t->lit_len = n;
        p->i += n + 1;
        return FV_OK;
    }
    if (p->i < p->len && (p->s[p->i] == '-' || (p->s[p->i] >= '0' && p->s[p->i] <= '9'))) {
        size_t n = 0;
        if (p->s[p->i] == '-')
            p->i++;
        while (p->i < p->len && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
            p->i++;
            n++;
        }
        if (n > 0 && p->i < p->len && p->s[p->i] == '.') {
            p->i++;
            size_t fd = 0;
            while (p->i < p->len && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
                p->i++;
                fd++;
            }
            if (fd == 0)
                return perr(p, p->i, "expected a digit after the decimal point");
        }
        if (n == 0)
            return perr(p, start, "expected a number after '-'");
        if (p->i < p->len && ident_char(p->s[p->i]))
            return perr(p, p->i, "unexpected character in a number");
        if (p->i - start > 40)
            return perr(p, start, "number longer than 40 characters");
        t->lit_s = fv_strndup(p->s + start, p->i - start);
        if (t->lit_s == NULL)
            return FV_E_NOMEM;
        t->lit = L_NUMBER;
        t->lit_len = p->i - start;
        return FV_OK;
    }
    if (at_word(p, "true")) {
        p->i += 4;
        t->lit = L_TRUE;
        return FV_OK;
    }
    if (at_word(p, "false")) {
        p->i += 5;
        t->lit = L_FALSE;
        return FV_OK;
    }
    return perr(p, start, "expected a value after '%s'", after);
}

static void path_text(const struct cnode *t, size_t upto, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < upto && k < t->n_seg; k++) {
        int n = snprintf(buf + o, cap - o, "%s%s", k > 0 ? "." : "", t->seg[k]);
        if (n < 0 || (size_t)n >= cap - o)
            break;
        o += (size_t)n;
    }
}

static int parse_test(struct parser *p, struct cnode **ret)
{
    struct cnode *t;
    size_t n;
    int rc = FV_OK;
    char ptext[4 * (FV_MODEL_LINK_MAX + 1) + 1];

    skip_ws(p);
    n = ident_len(p);
    if (n == 0)
        return perr(p, p->i, "expected a field name, '(' or '!' but found %s", describe_at(p));
    if (++p->tests > FV_MODEL_CRITERIA_MAX_TESTS)
        return perr(p, p->i, "more than %d tests", FV_MODEL_CRITERIA_MAX_TESTS);
    t = node_new(N_TEST, p->i);
    if (t == NULL)
        return FV_E_NOMEM;

    for (;;) {
        if (n > FV_MODEL_LINK_MAX) {
            rc = perr(p, p->i, "name longer than %d bytes", FV_MODEL_LINK_MAX);
            goto out;
        }
        /* a string function: path.contains( */
        if (t->n_seg > 0) {
            static const struct {
                const char *name;
                enum op op;
            } fns[] = {{"contains", OP_CONTAINS}, {"startsWith", OP_STARTS}, {"endsWith", OP_ENDS}};
            size_t save = p->i;
            bool fn = false;
            for (size_t k = 0; k < FV_ARRAY_LEN(fns) && !fn; k++) {
                if (strlen(fns[k].name) != n || memcmp(p->s + p->i, fns[k].name, n) != 0)
                    continue;
                p->i += n;
                skip_ws(p);
                if (p->i < p->len && p->s[p->i] == '(') {
                    fn = true;
                    t->op = fns[k].op;
                    t->op_pos = save;
                } else {
                    p->i = save;
                }
            }
            if (fn) {
                p->i++; /* ( */
                char after[24];
                (void)snprintf(after, sizeof(after), "%s(", op_text[t->op]);
                rc = parse_value(p, t, after);
                if (rc != FV_OK)
                    goto out;
                if (t->lit != L_STRING && t->lit != L_NUMBER) {
                    rc =
                        perr(p, t->lit_pos, "expected a string in double quotes after '%s'", after);
                    goto out;
                }
                skip_ws(p);
                if (p->i >= p->len || p->s[p->i] != ')') {
                    rc = perr(p, p->i, "expected ')' to close '%s'", after);
                    goto out;
                }
                p->i++;
                goto out;
            }
        }
        if (t->n_seg == FV_MODEL_CRITERIA_MAX_SEGS) {
            rc = perr(p, p->i, "field path has more than %d parts", FV_MODEL_CRITERIA_MAX_SEGS);
            goto out;
        }
        memcpy(t->seg[t->n_seg], p->s + p->i, n);
        t->seg[t->n_seg][n] = '\0';
        t->n_seg++;
        p->i += n;
        if (p->i < p->len && p->s[p->i] == '.') {
            p->i++;
            n = ident_len(p);
            if (n == 0) {
                rc = perr(p, p->i, "expected a name after '.'");
                goto out;
            }
            continue;
        }
        break;
    }

    path_text(t, t->n_seg, ptext, sizeof(ptext));
    skip_ws(p);
    t->op_pos = p->i;
    if (at_word(p, "is")) {
        p->i += 2;
        skip_ws(p);
        t->op = OP_IS_NULL;
        if (at_word(p, "not")) {
            p->i += 3;
            skip_ws(p);
            t->op = OP_NOT_NULL;
        }
        if (!at_word(p, "null")) {
            rc = perr(p, p->i, "expected 'null' after '%s'", t->op == OP_IS_NULL ? "is" : "is not");
            goto out;
        }
        p->i += 4;
        goto out;
    }
    static const struct {
        const char *tok;
        enum op op;
    } rel[] = {{"==", OP_EQ}, {"!=", OP_NE}, {"<=", OP_LE},
               {">=", OP_GE}, {"<", OP_LT},  {">", OP_GT}};
    bool found = false;
    for (size_t k = 0; k < FV_ARRAY_LEN(rel) && !found; k++)
        if (at(p, rel[k].tok)) {
            t->op = rel[k].op;
            p->i += strlen(rel[k].tok);
            found = true;
        }
    if (!found) {
        if (p->i < p->len && p->s[p->i] == '=')
            rc = perr(p, p->i, "expected '==' (equality is written '==', not '=')");
        else
            rc = perr(p, p->i, "expected an operator (==, !=, <, <=, >, >=, is null) after '%s'",
                      ptext);
        goto out;
    }
    skip_ws(p);
    if (at_word(p, "null")) {
        if (t->op != OP_EQ && t->op != OP_NE) {
            rc = perr(p, p->i, "null can only be compared with == or !=");
            goto out;
        }
        t->op = t->op == OP_EQ ? OP_IS_NULL : OP_NOT_NULL;
        p->i += 4;
        goto out;
    }
    rc = parse_value(p, t, op_text[t->op]);
    if (rc != FV_OK)
        goto out;
out:
    if (rc == FV_OK) {
        *ret = t;
        t = NULL;
    }
    node_free(t);
    return rc;
}

static int parse_or(struct parser *p, struct cnode **ret);

static int parse_atom(struct parser *p, struct cnode **ret)
{
    skip_ws(p);
    if (p->i < p->len && p->s[p->i] == '(') {
        size_t open = p->i;
        int rc;
        if (++p->depth > FV_MODEL_CRITERIA_MAX_DEPTH)
            return perr(p, p->i, "nested deeper than %d levels", FV_MODEL_CRITERIA_MAX_DEPTH);
        p->i++;
        rc = parse_or(p, ret);
        if (rc != FV_OK)
            return rc;
        skip_ws(p);
        if (p->i >= p->len || p->s[p->i] != ')') {
            node_free(*ret);
            *ret = NULL;
            return perr(p, p->i, "expected ')' to close the '(' at %zu", open);
        }
        p->i++;
        p->depth--;
        return FV_OK;
    }
    return parse_test(p, ret);
}

static int parse_unary(struct parser *p, struct cnode **ret)
{
    skip_ws(p);
    if (p->i < p->len && p->s[p->i] == '!' && !(p->i + 1 < p->len && p->s[p->i + 1] == '=')) {
        struct cnode *n, *kid = NULL;
        size_t pos = p->i;
        int rc;
        if (++p->depth > FV_MODEL_CRITERIA_MAX_DEPTH)
            return perr(p, p->i, "nested deeper than %d levels", FV_MODEL_CRITERIA_MAX_DEPTH);
        p->i++;
        rc = parse_unary(p, &kid);
        if (rc != FV_OK)
            return rc;
        p->depth--;
        n = node_new(N_NOT, pos);
        if (n == NULL) {
            node_free(kid);
            return FV_E_NOMEM;
        }
        rc = node_add(n, kid);
        if (rc != FV_OK) {
            node_free(n);
            return rc;
        }
        *ret = n;
        return FV_OK;
    }
    return parse_atom(p, ret);
}

/* A list of `sub` joined by tok ("&&" or "||") as one n-ary node. */
static int parse_list(struct parser *p, const char *tok, enum node_kind kind,
                      int (*sub)(struct parser *, struct cnode **), struct cnode **ret)
{
    struct cnode *first = NULL, *list = NULL, *kid = NULL;
    int rc;

    rc = sub(p, &first);
    if (rc != FV_OK)
        return rc;
    for (;;) {
        skip_ws(p);
        if (!at(p, tok))
            break;
        size_t pos = p->i;
        p->i += 2;
        if (list == NULL) {
            list = node_new(kind, first->pos);
            if (list == NULL) {
                node_free(first);
                return FV_E_NOMEM;
            }
            rc = node_add(list, first);
            if (rc != FV_OK)
                goto fail;
        }
        skip_ws(p);
        if (p->i >= p->len) {
            rc = perr(p, p->i, "expected a test after '%s' at %zu", tok, pos);
            goto fail;
        }
        rc = sub(p, &kid);
        if (rc != FV_OK)
            goto fail;
        rc = node_add(list, kid);
        if (rc != FV_OK)
            goto fail;
    }
    *ret = list != NULL ? list : first;
    return FV_OK;
fail:
    node_free(list);
    return rc;
}

static int parse_and(struct parser *p, struct cnode **ret)
{
    return parse_list(p, "&&", N_AND, parse_unary, ret);
}

static int parse_or(struct parser *p, struct cnode **ret)
{
    return parse_list(p, "||", N_OR, parse_and, ret);
}

int fv_model_criteria_parse(const char *text, size_t len, struct fv_criteria **ret,
                            struct fv_error *reterr)
{
    struct parser p = {.s = text, .len = len, .e = reterr};
    struct fv_criteria *c = NULL;
    struct cnode *root = NULL;
    size_t bad;
    int rc;

    if (len > FV_MODEL_CRITERIA_MAX_BYTES)
        return perr(&p, FV_MODEL_CRITERIA_MAX_BYTES, "criteria longer than %d bytes",
                    FV_MODEL_CRITERIA_MAX_BYTES);
    if (!fv_model_utf8_check(text, len, NULL, &bad))
        return perr(&p, bad, "not valid UTF-8");
    const char *nul = memchr(text, '\0', len);
    if (nul != NULL)
        return perr(&p, (size_t)(nul - text), "NUL character not allowed");

    rc = parse_or(&p, &root);
    if (rc != FV_OK)
        return rc;
    skip_ws(&p);
    if (p.i < p.len) {
        if (p.s[p.i] == ')')
            rc = perr(&p, p.i, "unmatched ')'");
        else
            rc = perr(&p, p.i, "expected '&&', '||' or the end");
        goto out;
    }
    c = fv_calloc(1, sizeof(*c));
    if (c == NULL) {
        rc = FV_E_NOMEM;
        goto out;
    }
    c->root = root;
    root = NULL;
    *ret = c;
out:
    node_free(root);
    return rc;
}

/* ------------------------------------------------------------------ dump */

static int dump_node(const struct cnode *n, struct fv_buf *b)
{
    int rc = FV_OK;
    switch (n->kind) {
    case N_AND:
    case N_OR:
    case N_NOT:
        rc = fv_buf_append_cstr(b, n->kind == N_AND ? "(&&" : n->kind == N_OR ? "(||" : "(!");
        for (size_t i = 0; rc == FV_OK && i < n->n_kids; i++) {
            rc = fv_buf_append(b, " ", 1);
            if (rc == FV_OK)
                rc = dump_node(n->kids[i], b);
        }
        return rc == FV_OK ? fv_buf_append(b, ")", 1) : rc;
    case N_TEST:
        rc = fv_buf_appendf(b, "(%s ", op_text[n->op]);
        for (size_t i = 0; rc == FV_OK && i < n->n_seg; i++)
            rc = fv_buf_appendf(b, "%s%s", i > 0 ? "." : "", n->seg[i]);
        if (rc != FV_OK)
            return rc;
        switch (n->lit) {
        case L_STRING:
            rc = fv_buf_append(b, " \"", 2);
            if (rc == FV_OK)
                rc = fv_buf_append(b, n->lit_s, n->lit_len);
            if (rc == FV_OK)
                rc = fv_buf_append(b, "\"", 1);
            break;
        case L_DATE:
            rc = fv_buf_appendf(b, " '%s'", n->lit_s);
            break;
        case L_NUMBER:
            rc = fv_buf_appendf(b, " %s", n->lit_s);
            break;
        case L_TRUE:
            rc = fv_buf_append_cstr(b, " true");
            break;
        case L_FALSE:
            rc = fv_buf_append_cstr(b, " false");
            break;
        case L_NONE:
            break;
        }
        return rc == FV_OK ? fv_buf_append(b, ")", 1) : rc;
    }
    return rc;
}

int fv_model_criteria_dump(const struct fv_criteria *c, struct fv_buf *out)
{
    return dump_node(c->root, out);
}

/* -------------------------------------------------------------- compiler */

void fv_model_where_init(struct fv_sql_where *w)
{
    fv_buf_init(&w->sql, FV_MODEL_WHERE_MAX);
    w->params = NULL;
    w->n_params = 0;
    w->cap_params = 0;
}

void fv_model_where_release(struct fv_sql_where *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->n_params; i++)
        fv_model_sqlval_release(&w->params[i]);
    fv_free(w->params);
    w->params = NULL;
    w->n_params = w->cap_params = 0;
    fv_buf_release(&w->sql);
}

int fv_model_where_push(struct fv_sql_where *w, struct fv_sqlval *v)
{
    if (w->n_params == w->cap_params) {
        size_t cap = w->cap_params == 0 ? 8 : w->cap_params * 2;
        if (cap > 4 * FV_MODEL_CRITERIA_MAX_TESTS * 4) {
            fv_model_sqlval_release(v);
            return FV_E_LIMIT;
        }
        struct fv_sqlval *np = fv_realloc(w->params, cap * sizeof(*np));
        if (np == NULL) {
            fv_model_sqlval_release(v);
            return FV_E_NOMEM;
        }
        w->params = np;
        w->cap_params = cap;
    }
    w->params[w->n_params++] = *v;
    memset(v, 0, sizeof(*v));
    v->type = FV_SQL_NULL;
    return FV_OK;
}

/* What a column holds, for the operator and literal rules. */
enum kind {
    K_TEXT,         /* free text: ==, !=, contains, startsWith, endsWith */
    K_INT,          /* number, autonumber, ID */
    K_SCALED,       /* decimal, percent, currency */
    K_DATE,         /* "YYYY-MM-DD" */
    K_DATETIME,     /* "YYYY-MM-DD HH:MM:SS" */
    K_TIME,         /* "HH:MM:SS" */
    K_BOOL,         /* decision */
    K_MULTI,        /* JSON array of choices */
    K_LOOKUP,       /* record ID */
    K_LOOKUP_MULTI, /* JSON array of record IDs */
    K_COMPOSITE     /* name/address without a part: null tests only */
};

struct comp {
    const struct fv_app *app;
    struct fv_sql_where *w;
    struct fv_error *e;
};

static int cerr(struct comp *c, size_t pos, const char *fmt, ...) FV_PRINTF(3, 4);

static int cerr(struct comp *c, size_t pos, const char *fmt, ...)
{
    char msg[FV_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return fv_error_set(c->e, FV_E_CRITERIA, pos, "at %zu: %s", pos, msg);
}

static int emit(struct comp *c, const char *s)
{
    return fv_buf_append_cstr(&c->w->sql, s);
}

/*
 * Identifier syntax of everything emitted: [A-Za-z][A-Za-z0-9_]*, at most
 * "c_" + link + "__" + part long. Column and table names derived from link
 * names ("c_<64 bytes>__first_name") are longer than a link name itself.
 */
static bool ident_safe(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > FV_MODEL_LINK_MAX * 2 + 6 || !ident_start(s[0]))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!ident_char(s[i]))
            return false;
    return true;
}

/* A double-quoted identifier built from validated names only. */
static int emit_ident(struct comp *c, const char *name)
{
    FV_ASSERT(ident_safe(name));
    int rc = fv_buf_append(&c->w->sql, "\"", 1);
    if (rc == FV_OK)
        rc = fv_buf_append_cstr(&c->w->sql, name);
    if (rc == FV_OK)
        rc = fv_buf_append(&c->w->sql, "\"", 1);
    return rc;
}

static int push_text(struct comp *c, const char *s, size_t len)
{
    struct fv_sqlval v = {.type = FV_SQL_TEXT};
    v.s = fv_malloc(len + 1);
    if (v.s == NULL)
        return FV_E_NOMEM;
    memcpy(v.s, s, len);
    v.s[len] = '\0';
    v.len = len;
    return fv_model_where_push(c->w, &v);
}

static int push_int(struct comp *c, int64_t i)
{
    struct fv_sqlval v = {.type = FV_SQL_INT, .i = i};
    return fv_model_where_push(c->w, &v);
}

/* Column reference: name, its kind, and the field (NULL for system fields). */
struct colref {
    char col[FV_MODEL_LINK_MAX * 2 + 8];
    enum kind kind;
    const struct fv_field *f;
    enum fv_field_type ptype; /* type used to convert literals */
};

static const char *kind_name(const struct colref *r)
{
    if (r->f != NULL)
        return fv_model_type_name(r->f->type);
    switch (r->kind) {
    case K_INT:
        return "ID";
    case K_DATETIME:
        return "datetime";
    default:
        return "text";
    }
}

/*
 * Convert the literal of test t to one column value with the rules of a
 * field of type `type` (link name `name` in messages).
 */
static int convert_literal(struct comp *c, const struct cnode *t, const char *name,
                           enum fv_field_type type, const struct fv_field *f, struct fv_sqlval *out)
{
    struct fv_field tmp;
    struct fv_error verr;
    int rc;

    if (f == NULL || f->type != type) {
        memset(&tmp, 0, sizeof(tmp));
        (void)fv_strlcpy(tmp.link_name, name, sizeof(tmp.link_name));
        tmp.type = type;
        if (f != NULL) {
            tmp.decimal_places = f->decimal_places;
        }
        f = &tmp;
    }
    fv_error_init(&verr);
    rc = fv_model_value_parse_text(c->app, f, t->lit_s, t->lit_len, out, &verr);
    if (rc == FV_E_NOMEM)
        return rc;
    if (rc != FV_OK)
        return cerr(c, t->lit_pos, "%s", verr.msg);
    if (out->type == FV_SQL_NULL)
        return cerr(c, t->lit_pos, "empty value for '%s' (use == null)", name);
    return FV_OK;
}

/* Bind the literal of t for a column of reference r. */
static int bind_literal(struct comp *c, const struct cnode *t, const struct colref *r)
{
    struct fv_sqlval v = {.type = FV_SQL_NULL};
    int64_t id;
    int rc;
    const char *name = r->f != NULL ? r->f->link_name : r->col;

    switch (r->kind) {
    case K_TEXT:
    case K_MULTI:
        if (t->lit != L_STRING && t->lit != L_NUMBER)
            return cerr(c, t->lit_pos, "'%s' needs a string in double quotes", name);
        return push_text(c, t->lit_s, t->lit_len);
    case K_BOOL:
        if (t->lit != L_TRUE && t->lit != L_FALSE)
            return cerr(c, t->lit_pos, "'%s' needs true or false", name);
        return push_int(c, t->lit == L_TRUE ? 1 : 0);
    case K_LOOKUP:
    case K_LOOKUP_MULTI:
        if ((t->lit != L_NUMBER && t->lit != L_STRING) || t->lit_len == 0 || t->lit_len > 19 ||
            fv_parse_i64(t->lit_s, t->lit_len, &id) != FV_OK || id <= 0 || t->lit_s[0] == '+' ||
            t->lit_s[0] == '-')
            return cerr(c, t->lit_pos, "'%s' needs a record ID", name);
        return push_int(c, id);
    case K_INT:
        if (t->lit != L_NUMBER && t->lit != L_STRING)
            return cerr(c, t->lit_pos, "'%s' needs a number", name);
        if (r->f == NULL || r->f->type == FV_FIELD_AUTONUMBER) {
            /* ID and autonumber: an integer; autonumber also with its prefix */
            const char *s = t->lit_s;
            size_t len = t->lit_len;
            const char *pre = r->f != NULL ? r->f->autonumber_prefix : NULL;
            if (pre != NULL && t->lit == L_STRING && len > strlen(pre) &&
                memcmp(s, pre, strlen(pre)) == 0) {
                s += strlen(pre);
                len -= strlen(pre);
            }
            if (len == 0 || len > 20 || fv_parse_i64(s, len, &id) != FV_OK)
                return cerr(c, t->lit_pos, "'%s' needs a whole number", name);
            return push_int(c, id);
        }
        rc = convert_literal(c, t, name, FV_FIELD_NUMBER, r->f, &v);
        break;
    case K_SCALED:
        if (t->lit != L_NUMBER && t->lit != L_STRING)
            return cerr(c, t->lit_pos, "'%s' needs a number", name);
        rc = convert_literal(c, t, name, r->f->type, r->f, &v);
        break;
    case K_DATE:
    case K_DATETIME:
    case K_TIME:
        if (t->lit != L_DATE && t->lit != L_STRING)
            return cerr(c, t->lit_pos, "'%s' needs a %s in single quotes, like '%s'", name,
                        r->kind == K_TIME ? "time" : "date",
                        r->kind == K_TIME ? "14:30:00" : "01-Jan-2024");
        rc = convert_literal(c, t, name, r->ptype, r->f, &v);
        break;
    default:
        return cerr(c, t->lit_pos, "'%s' cannot be compared with a value", name);
    }
    if (rc != FV_OK)
        return rc;
    return fv_model_where_push(c->w, &v);
}

static bool kind_ordered(enum kind k)
{
    return k == K_INT || k == K_SCALED || k == K_DATE || k == K_DATETIME || k == K_TIME;
}

/* A null test on all columns of a name/address field. */
static int emit_composite_null(struct comp *c, const struct fv_field *f, bool not_null)
{
    char col[FV_MODEL_LINK_MAX * 2 + 8];
    int rc = emit(c, not_null ? "NOT (" : "(");
    for (size_t i = 0; rc == FV_OK && i < fv_model_field_ncols(f); i++) {
        rc = fv_model_field_column(f, i, col, sizeof(col), NULL, NULL);
        if (rc == FV_OK && i > 0)
            rc = emit(c, " AND ");
        if (rc == FV_OK)
            rc = emit_ident(c, col);
        if (rc == FV_OK)
            rc = emit(c, " IS NULL");
    }
    return rc == FV_OK ? emit(c, ")") : rc;
}

static int compile_test(struct comp *c, const struct fv_form *form, const struct cnode *t,
                        size_t si, int hops);

/* The comparison itself, once the column is known. */
static int compile_op(struct comp *c, const struct cnode *t, const struct colref *r)
{
    int rc = FV_OK;
    const char *name = r->f != NULL ? r->f->link_name : r->col;

    if (t->op == OP_IS_NULL || t->op == OP_NOT_NULL) {
        if (r->kind == K_COMPOSITE)
            return emit_composite_null(c, r->f, t->op == OP_NOT_NULL);
        rc = emit_ident(c, r->col);
        return rc == FV_OK ? emit(c, t->op == OP_IS_NULL ? " IS NULL" : " IS NOT NULL") : rc;
    }
    if (r->kind == K_COMPOSITE) {
        return cerr(c, t->pos, "field '%s' needs a part, like '%s.%s'", name, name,
                    r->f->type == FV_FIELD_NAME ? "last_name" : "district_city");
    }
    switch (t->op) {
    case OP_EQ:
    case OP_NE:
        if (r->kind == K_MULTI)
            return cerr(c, t->op_pos, "operator '%s' is not valid for '%s' (%s); use .contains()",
                        op_text[t->op], name, kind_name(r));
        if (r->kind == K_LOOKUP_MULTI) {
            rc = emit(c, t->op == OP_EQ ? "EXISTS (SELECT 1 FROM json_each("
                                        : "NOT EXISTS (SELECT 1 FROM json_each(");
            if (rc == FV_OK)
                rc = emit_ident(c, r->col);
            if (rc == FV_OK)
                rc = emit(c, ") WHERE value = ?)");
            return rc == FV_OK ? bind_literal(c, t, r) : rc;
        }
        if (r->kind == K_BOOL) {
            rc = emit(c, "coalesce(");
            if (rc == FV_OK)
                rc = emit_ident(c, r->col);
            if (rc == FV_OK)
                rc = emit(c, t->op == OP_EQ ? ", 0) = ?" : ", 0) <> ?");
            return rc == FV_OK ? bind_literal(c, t, r) : rc;
        }
        break;
    case OP_LT:
    case OP_LE:
    case OP_GT:
    case OP_GE:
        if (!kind_ordered(r->kind))
            return cerr(c, t->op_pos, "operator '%s' is not valid for '%s' (%s)", op_text[t->op],
                        name, kind_name(r));
        break;
    case OP_CONTAINS:
    case OP_STARTS:
    case OP_ENDS:
        if (r->kind == K_MULTI || r->kind == K_LOOKUP_MULTI) {
            if (t->op != OP_CONTAINS)
                return cerr(c, t->op_pos, "operator '%s' is not valid for '%s' (%s)",
                            op_text[t->op], name, kind_name(r));
            rc = emit(c, "EXISTS (SELECT 1 FROM json_each(");
            if (rc == FV_OK)
                rc = emit_ident(c, r->col);
            if (rc == FV_OK)
                rc = emit(c, ") WHERE value = ?)");
            return rc == FV_OK ? bind_literal(c, t, r) : rc;
        }
        if (r->kind != K_TEXT)
            return cerr(c, t->op_pos, "operator '%s' is not valid for '%s' (%s)", op_text[t->op],
                        name, kind_name(r));
        if (t->lit != L_STRING && t->lit != L_NUMBER)
            return cerr(c, t->lit_pos, "'%s' needs a string in double quotes", name);
        if (t->lit_len == 0) {
            /* every stored text is non-empty ("" is stored as NULL) */
            rc = emit_ident(c, r->col);
            return rc == FV_OK ? emit(c, " IS NOT NULL") : rc;
        }
        /* instr/substr are case-sensitive and treat % and _ literally (unlike LIKE) */
        if (t->op == OP_ENDS) {
            rc = emit(c, "substr(");
            if (rc == FV_OK)
                rc = emit_ident(c, r->col);
            if (rc == FV_OK)
                rc = emit(c, ", -length(?)) = ?");
            if (rc == FV_OK)
                rc = push_text(c, t->lit_s, t->lit_len);
            return rc == FV_OK ? push_text(c, t->lit_s, t->lit_len) : rc;
        }
        rc = emit(c, "instr(");
        if (rc == FV_OK)
            rc = emit_ident(c, r->col);
        if (rc == FV_OK)
            rc = emit(c, t->op == OP_CONTAINS ? ", ?) > 0" : ", ?) = 1");
        return rc == FV_OK ? push_text(c, t->lit_s, t->lit_len) : rc;
    default:
        break;
    }

    /* ==, != and ordering on one column */
    static const char *const sqlop[] = {
        [OP_EQ] = " IS ?", [OP_NE] = " IS NOT ?", [OP_LT] = " < ?",
        [OP_LE] = " <= ?", [OP_GT] = " > ?",      [OP_GE] = " >= ?"};
    struct colref rr = *r;
    bool day = false;
    if (r->kind == K_DATETIME && t->lit != L_NONE && t->lit_s != NULL) {
        /* a date without a time compares the day part: Added_Time >= '01-Jan-2024' */
        int y, m, d;
        const char *fmt = c->app != NULL ? c->app->date_format : NULL;
        if (fv_model_date_parse(fmt, t->lit_s, t->lit_len, &y, &m, &d) == FV_OK) {
            day = true;
            rr.kind = K_DATE;
            rr.ptype = FV_FIELD_DATE;
        }
    }
    if (day) {
        rc = emit(c, "substr(");
        if (rc == FV_OK)
            rc = emit_ident(c, r->col);
        if (rc == FV_OK)
            rc = emit(c, ", 1, 10)");
    } else {
        rc = emit_ident(c, r->col);
    }
    if (rc == FV_OK)
        rc = emit(c, sqlop[t->op]);
    return rc == FV_OK ? bind_literal(c, t, &rr) : rc;
}

static enum kind field_kind(const struct fv_field *f)
{
    switch (f->type) {
    case FV_FIELD_NUMBER:
    case FV_FIELD_AUTONUMBER:
        return K_INT;
    case FV_FIELD_DECIMAL:
    case FV_FIELD_PERCENT:
    case FV_FIELD_CURRENCY:
        return K_SCALED;
    case FV_FIELD_DATE:
        return K_DATE;
    case FV_FIELD_DATETIME:
        return K_DATETIME;
    case FV_FIELD_TIME:
        return K_TIME;
    case FV_FIELD_DECISION:
        return K_BOOL;
    case FV_FIELD_MULTI_SELECT:
    case FV_FIELD_CHECKBOX:
        return K_MULTI;
    case FV_FIELD_LOOKUP:
        return f->lookup_multi ? K_LOOKUP_MULTI : K_LOOKUP;
    default:
        return K_TEXT;
    }
}

/*
 * A test on an encrypted field (docs/criteria.md "Encrypted fields"): null
 * tests on the sealed column, == and != on the blind index. The literal is
 * converted exactly as == converts it for a field in clear, encoded, and
 * pushed as an FV_SQL_SECRET blind-index message: the store binds one BLOB
 * of its blind indexes under every live key version (rows of two versions
 * coexist while a key rotation runs), which the SQL splits into a list
 * (fv_model_bidx_list_sql). The list names the parameter by number (?N,
 * N = its position), so the anonymous placeholders after it keep counting
 * from N + 1. Everything else would need the plaintext in SQL: refused.
 */
static int compile_encrypted(struct comp *c, const struct fv_form *form, const struct cnode *t,
                             const struct fv_field *f, size_t rest)
{
    char col[FV_MODEL_LINK_MAX * 2 + 8];
    uint8_t *enc = NULL, *msg = NULL;
    size_t enc_len = 0, msg_len = 0;
    struct fv_sqlval v;
    int rc;

    if (rest > 0)
        return cerr(c, t->pos, "field '%s' is encrypted: its parts cannot be searched",
                    f->link_name);
    if (t->op == OP_IS_NULL || t->op == OP_NOT_NULL) {
        rc = fv_model_field_column(f, FV_MODEL_ENC_COL_DATA, col, sizeof(col), NULL, NULL);
        if (rc == FV_OK)
            rc = emit_ident(c, col);
        return rc == FV_OK ? emit(c, t->op == OP_IS_NULL ? " IS NULL" : " IS NOT NULL") : rc;
    }
    if (t->op != OP_EQ && t->op != OP_NE)
        return cerr(c, t->op_pos,
                    "field '%s' is encrypted: only == and != criteria are supported, not '%s'",
                    f->link_name, op_text[t->op]);
    if (!fv_model_field_has_bidx(f))
        return cerr(c, t->op_pos,
                    "field '%s' is encrypted: only null tests are supported on encrypted %s "
                    "fields",
                    f->link_name, fv_model_type_name(f->type));
    if (c->app == NULL)
        return cerr(c, t->pos, "field '%s' is encrypted: criteria need the app", f->link_name);

    /* the same literal conversion as == on the field in clear */
    struct colref r;
    memset(&r, 0, sizeof(r));
    r.f = f;
    r.kind = field_kind(f);
    r.ptype = f->type;
    rc = bind_literal(c, t, &r);
    if (rc != FV_OK)
        return rc;
    v = c->w->params[--c->w->n_params];
    rc = fv_model_value_encode(f, &v, &enc, &enc_len);
    fv_model_sqlval_release(&v);
    if (rc == FV_OK)
        rc = fv_model_field_bidx_message(c->app->link_name, form->link_name, f->link_name, enc,
                                         enc_len, &msg, &msg_len);
    fv_free(enc);
    if (rc != FV_OK)
        return rc;
    v.type = FV_SQL_SECRET;
    v.i = 0;
    v.r = 0;
    v.s = (char *)msg;
    v.len = msg_len;
    rc = fv_model_where_push(c->w, &v); /* takes msg, also on failure */
    if (rc != FV_OK)
        return rc;
    size_t param = c->w->n_params;

    rc = fv_model_field_column(f, FV_MODEL_ENC_COL_BIDX, col, sizeof(col), NULL, NULL);
    if (rc == FV_OK && t->op == OP_NE) {
        rc = emit(c, "(");
        if (rc == FV_OK)
            rc = emit_ident(c, col);
        if (rc == FV_OK)
            rc = emit(c, " IS NULL OR ");
    }
    if (rc == FV_OK)
        rc = emit_ident(c, col);
    if (rc == FV_OK)
        rc = emit(c, t->op == OP_EQ ? " IN " : " NOT IN ");
    if (rc == FV_OK)
        rc = fv_model_bidx_list_sql(&c->w->sql, param);
    if (rc == FV_OK && t->op == OP_NE)
        rc = emit(c, ")");
    return rc;
}

static int compile_test(struct comp *c, const struct fv_form *form, const struct cnode *t,
                        size_t si, int hops)
{
    struct colref r;
    const char *name = t->seg[si];
    size_t rest = t->n_seg - si - 1;
    char ptext[4 * (FV_MODEL_LINK_MAX + 1) + 1];
    int rc;

    memset(&r, 0, sizeof(r));
    path_text(t, si + 1, ptext, sizeof(ptext));
    enum fv_sysfield sys = fv_model_sysfield_from_name(name, strlen(name));
    if (sys != FV_SYS_NONE) {
        if (rest > 0)
            return cerr(c, t->pos, "system field '%s' has no parts", ptext);
        (void)fv_strlcpy(r.col, name, sizeof(r.col));
        switch (sys) {
        case FV_SYS_ID:
            r.kind = K_INT;
            r.ptype = FV_FIELD_NUMBER;
            break;
        case FV_SYS_ADDED_TIME:
        case FV_SYS_MODIFIED_TIME:
            r.kind = K_DATETIME;
            r.ptype = FV_FIELD_DATETIME;
            break;
        default:
            r.kind = K_TEXT;
            r.ptype = FV_FIELD_SINGLE_LINE;
            break;
        }
        return compile_op(c, t, &r);
    }

    const struct fv_field *f = fv_model_form_field(form, name);
    if (f == NULL)
        return cerr(c, t->pos, "form '%s' has no field '%s'", form->link_name, ptext);
    r.f = f;
    r.kind = field_kind(f);
    r.ptype = f->type;
    if (f->encrypt)
        return compile_encrypted(c, form, t, f, rest);

    if (f->type == FV_FIELD_LOOKUP && rest > 0) {
        const struct fv_form *target = f->lookup_target;
        char tcol[FV_MODEL_LINK_MAX + 3], ttab[2 * FV_MODEL_LINK_MAX + 8];
        if (target == NULL)
            target = fv_model_app_form(c->app, f->lookup_form);
        if (target == NULL || c->app == NULL || hops >= FV_MODEL_CRITERIA_MAX_SEGS)
            return cerr(c, t->pos, "lookup '%s' cannot be followed", ptext);
        rc = fv_model_field_column(f, 0, tcol, sizeof(tcol), NULL, NULL);
        if (rc != FV_OK)
            return rc;
        /* the store names tables with the same function */
        rc = fv_model_form_table(c->app, target, ttab, sizeof(ttab));
        if (rc != FV_OK)
            return rc;
        if (f->lookup_multi) {
            rc = emit(c, "EXISTS (SELECT 1 FROM json_each(");
            if (rc == FV_OK)
                rc = emit_ident(c, tcol);
            if (rc == FV_OK)
                rc = emit(c, ") WHERE value IN (SELECT \"ID\" FROM ");
        } else {
            rc = emit_ident(c, tcol);
            if (rc == FV_OK)
                rc = emit(c, " IN (SELECT \"ID\" FROM ");
        }
        if (rc == FV_OK)
            rc = emit_ident(c, ttab);
        if (rc == FV_OK)
            rc = emit(c, " WHERE ");
        if (rc == FV_OK)
            rc = compile_test(c, target, t, si + 1, hops + 1);
        if (rc == FV_OK)
            rc = emit(c, f->lookup_multi ? "))" : ")");
        return rc;
    }

    if (f->type == FV_FIELD_URL || f->type == FV_FIELD_NAME || f->type == FV_FIELD_ADDRESS) {
        int idx = 0;
        if (rest > 1)
            return cerr(c, t->pos, "field '%s' has no part '%s'", f->link_name, t->seg[si + 2]);
        if (rest == 1) {
            idx = fv_model_field_part_index(f, t->seg[si + 1], strlen(t->seg[si + 1]));
            if (idx < 0)
                return cerr(c, t->pos, "field '%s' has no part '%s'", f->link_name, t->seg[si + 1]);
        } else if (f->type != FV_FIELD_URL) {
            r.kind = K_COMPOSITE;
            return compile_op(c, t, &r);
        }
        rc = fv_model_field_column(f, (size_t)idx, r.col, sizeof(r.col), NULL, NULL);
        if (rc != FV_OK)
            return rc;
        r.kind = K_TEXT;
        r.ptype = FV_FIELD_SINGLE_LINE;
        return compile_op(c, t, &r);
    }
    if (rest > 0)
        return cerr(c, t->pos, "field '%s' (%s) has no part '%s'", f->link_name,
                    fv_model_type_name(f->type), t->seg[si + 1]);
    rc = fv_model_field_column(f, 0, r.col, sizeof(r.col), NULL, NULL);
    if (rc != FV_OK)
        return rc;
    return compile_op(c, t, &r);
}

static int compile_node(struct comp *c, const struct fv_form *form, const struct cnode *n)
{
    int rc = FV_OK;
    switch (n->kind) {
    case N_TEST:
        return compile_test(c, form, n, 0, 0);
    case N_NOT:
        rc = emit(c, "NOT (");
        if (rc == FV_OK)
            rc = compile_node(c, form, n->kids[0]);
        return rc == FV_OK ? emit(c, ")") : rc;
    case N_AND:
    case N_OR:
        rc = emit(c, "(");
        for (size_t i = 0; rc == FV_OK && i < n->n_kids; i++) {
            if (i > 0)
                rc = emit(c, n->kind == N_AND ? " AND " : " OR ");
            if (rc == FV_OK)
                rc = compile_node(c, form, n->kids[i]);
        }
        return rc == FV_OK ? emit(c, ")") : rc;
    }
    return FV_E_INTERNAL;
}

int fv_model_criteria_compile(const struct fv_criteria *crit, const struct fv_app *app,
                              const struct fv_form *form, struct fv_sql_where *w,
                              struct fv_error *reterr)
{
    struct comp c = {.app = app, .w = w, .e = reterr};
    size_t len0 = w->sql.len, np0 = w->n_params;
    int rc;

    FV_ASSERT(crit != NULL && crit->root != NULL && form != NULL);
    rc = emit(&c, "(");
    if (rc == FV_OK)
        rc = compile_node(&c, form, crit->root);
    if (rc == FV_OK)
        rc = emit(&c, ")");
    if (rc == FV_E_LIMIT)
        (void)fv_error_set(reterr, FV_E_LIMIT, SIZE_MAX, "criteria compiles to too much SQL");
    if (rc != FV_OK) {
        /* roll back to the state on entry; a buffer that freed itself resets w */
        while (w->n_params > np0)
            fv_model_sqlval_release(&w->params[--w->n_params]);
        if (w->sql.p != NULL && w->sql.len >= len0) {
            w->sql.len = len0;
            w->sql.p[len0] = '\0';
        } else if (len0 > 0) {
            fv_model_where_release(w);
            fv_model_where_init(w);
        }
    }
    return rc;
}
