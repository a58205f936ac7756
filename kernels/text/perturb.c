/* Perturbation and alignment (see perturb.h). Invariant of every built pair: baseline and
 * perturbed ids have the same length and token types and differ only at the injected
 * positions, which lie inside the max_len window. */
#include "perturb.h"

#include <errno.h>
#include <libstemmer.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <utf8proc.h>

/* ---- ids and generators ------------------------------------------------------------------- */

uint64_t mch_pair_id(const char *qid, const char *docno)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)qid; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    h ^= 0x1f;
    h *= 1099511628211ULL;
    for (const unsigned char *p = (const unsigned char *)docno; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

uint64_t mch_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t mch_pair_seed(uint64_t job_seed, uint64_t pair_id)
{
    uint64_t s = pair_id;
    uint64_t mixed = mch_rng_next(&s);
    s = job_seed ^ mixed;
    return mch_rng_next(&s);
}

/* Uniform in [0, n) without modulo bias. */
static uint64_t rng_below(uint64_t *state, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = mch_rng_next(state);
    while (r >= limit);
    return r % n;
}

static const char *const perturb_names[MCH_PERTURB_COUNT] = {"tfc1",    "tdc",  "lnc1", "inject",
                                                             "replace", "tfc2", "lnc2"};

const char *mch_perturb_name(mch_perturb_kind k)
{
    return perturb_names[k];
}

const char *mch_perturb_names(void)
{
    return "tfc1, tdc, lnc1, inject, replace, tfc2 or lnc2";
}

int mch_perturb_axiom_sign(mch_perturb_kind k)
{
    return k == MCH_PERTURB_LNC1 ? -1 : 1;
}

int mch_perturb_parse(const char *s, mch_perturb_kind *k)
{
    for (int i = 0; i < MCH_PERTURB_COUNT; i++)
        if (!strcmp(s, perturb_names[i])) {
            *k = (mch_perturb_kind)i;
            return 1;
        }
    return 0;
}

/* Case-insensitive Levenshtein distance of a and b (b at most 15 bytes; longer a costs more). */
static int edit_distance(const char *a, const char *b)
{
    int prev[16], cur[16], nb = (int)strlen(b);
    for (int j = 0; j <= nb; j++) prev[j] = j;
    for (int i = 1; *a; a++, i++) {
        cur[0] = i;
        for (int j = 1; j <= nb; j++) {
            int sub = prev[j - 1] + ((*a | 0x20) != (b[j - 1] | 0x20));
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof prev);
    }
    return prev[nb];
}

const char *mch_perturb_nearest(const char *s)
{
    const char *best = NULL;
    int best_d = 3;
    for (int i = 0; i < MCH_PERTURB_COUNT; i++) {
        const char *n = perturb_names[i];
        int d = edit_distance(s, n);
        /* one a prefix of the other: "lnc" -> lnc1, "injection" -> inject */
        if (*s && (!strncasecmp(s, n, strlen(s)) || !strncasecmp(s, n, strlen(n)))) d = 0;
        if (d < best_d) best_d = d, best = n;
    }
    return best;
}

static const char *const role_names[MCH_ROLE_COUNT] = {
    "cls", "sep", "query_term", "query_other", "injected", "doc_term", "doc_match", "doc_other"};

const char *mch_role_name(mch_role r)
{
    return r < MCH_ROLE_COUNT ? role_names[r] : "?";
}

/* ---- words -------------------------------------------------------------------------------- */

/* A word of the basic step is a query-term candidate when it has >= 3 characters and is not
 * punctuation (the basic step leaves punctuation as one-character words) or a special token. */
static int candidate_word(const char *w, size_t len)
{
    if (len >= 2 && w[0] == '[' && w[len - 1] == ']') return 0;
    size_t i = 0, chars = 0;
    int letters_or_digits = 0;
    while (i < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)w + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0) return 0;
        utf8proc_category_t cat = utf8proc_category(cp);
        if (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_NO) letters_or_digits = 1;
        i += (size_t)k;
        chars++;
    }
    return chars >= 3 && letters_or_digits;
}

static const char *const english_stopwords[] = {
    "i",       "me",      "my",      "myself",   "we",         "our",   "ours",    "ourselves",
    "you",     "your",    "yours",   "yourself", "yourselves", "he",    "him",     "his",
    "himself", "she",     "her",     "hers",     "herself",    "it",    "its",     "itself",
    "they",    "them",    "their",   "theirs",   "themselves", "what",  "which",   "who",
    "whom",    "this",    "that",    "these",    "those",      "am",    "is",      "are",
    "was",     "were",    "be",      "been",     "being",      "have",  "has",     "had",
    "having",  "do",      "does",    "did",      "doing",      "a",     "an",      "the",
    "and",     "but",     "if",      "or",       "because",    "as",    "until",   "while",
    "of",      "at",      "by",      "for",      "with",       "about", "against", "between",
    "into",    "through", "during",  "before",   "after",      "above", "below",   "to",
    "from",    "up",      "down",    "in",       "out",        "on",    "off",     "over",
    "under",   "again",   "further", "then",     "once",       "here",  "there",   "when",
    "where",   "why",     "how",     "all",      "any",        "both",  "each",    "few",
    "more",    "most",    "other",   "some",     "such",       "no",    "nor",     "not",
    "only",    "own",     "same",    "so",       "than",       "too",   "very",    "can",
    "will",    "just",    "don",     "should",   "now",        "ain",   "aren",    "couldn",
    "didn",    "doesn",   "hadn",    "hasn",     "haven",      "isn",   "ma",      "mightn",
    "mustn",   "needn",   "shan",    "shouldn",  "wasn",       "weren", "won",     "wouldn",
    "also",    "via",     "etc"};

mch_strmap *mch_stopwords_default(void)
{
    mch_strmap *m = mch_strmap_create();
    if (!m) return NULL;
    for (size_t i = 0; i < sizeof english_stopwords / sizeof english_stopwords[0]; i++)
        if (!mch_strmap_put(m, english_stopwords[i], strlen(english_stopwords[i]), NULL)) {
            mch_strmap_free(m);
            return NULL;
        }
    return m;
}

/* The longest line --df and --stopwords files may have: max_line_bytes, 0 for the default. */
static size_t line_max(size_t max_line_bytes)
{
    size_t max = max_line_bytes ? max_line_bytes : MCH_LINE_BYTES_DEFAULT;
    return max > SIZE_MAX / 4 ? SIZE_MAX / 4 : max; /* max + 2 cannot overflow */
}

/* The next line of f (path, for messages) into *line (grown as needed, never past max + 2
 * bytes), without its "\n" and a "\r" before it, and its length in *len (-1 at the end);
 * *lineno counts it. Errors: a line longer than max bytes (found once max + 2 of its bytes are
 * read, so /dev/zero fails fast), a read error, out of memory. */
static mch_status bounded_line(FILE *f, const char *path, size_t max, char **line, size_t *cap,
                               long *len, long *lineno, mch_err *err)
{
    size_t n = 0;
    int c;
    *len = -1;
    while ((c = getc(f)) != EOF && c != '\n') {
        if (n > max) break; /* one byte more than max is allowed for a "\r" */
        if (n + 2 > *cap) {
            size_t nc = *cap ? 2 * *cap : 256;
            if (nc > max + 2) nc = max + 2;
            char *p = realloc(*line, nc);
            if (!p) return mch_fail(err, MCH_ERR_NOMEM, "out of memory reading %s", path);
            *line = p;
            *cap = nc;
        }
        (*line)[n++] = (char)c;
    }
    if (c == EOF && ferror(f))
        return mch_fail(err, MCH_ERR_IO, "%s: read error after line %ld", path, *lineno);
    if (c == EOF && n == 0) return MCH_OK;
    if (c != EOF && c != '\n') n++; /* the byte that broke the loop: too long either way */
    if (n > 0 && n <= max + 1 && (*line)[n - 1] == '\r') n--;
    if (n > max)
        return mch_fail(err, MCH_ERR_FORMAT,
                        "%s:%ld: line longer than %zu bytes (--max-line-bytes)", path, *lineno + 1,
                        max);
    if (!*line && !(*line = malloc(*cap = 1)))
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory reading %s", path);
    (*line)[n] = '\0';
    *len = (long)n;
    ++*lineno;
    return MCH_OK;
}

mch_status mch_stopwords_load(mch_strmap **out, const char *path, size_t max_line_bytes,
                              mch_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    size_t max = line_max(max_line_bytes);
    mch_strmap *m = mch_strmap_create();
    char *line = NULL;
    size_t cap = 0;
    long n, lineno = 0;
    mch_status rc = m ? MCH_OK : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    while (!rc && !(rc = bounded_line(f, path, max, &line, &cap, &n, &lineno, err)) && n >= 0) {
        while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = 0;
        if (!n || line[0] == '#') continue;
        if (!mch_strmap_put(m, line, (size_t)n, NULL))
            rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    free(line);
    fclose(f);
    if (rc) {
        mch_strmap_free(m);
        return rc;
    }
    *out = m;
    return MCH_OK;
}

/* ---- document frequencies ----------------------------------------------------------------- */

/* Each value packs (last document counted << 32) | df, so a word counts once per document. */
struct mch_df {
    mch_strmap *map;
    long N;
};

mch_df *mch_df_create(void)
{
    mch_df *df = calloc(1, sizeof *df);
    if (df && !(df->map = mch_strmap_create())) {
        free(df);
        return NULL;
    }
    return df;
}

void mch_df_free(mch_df *df)
{
    if (!df) return;
    mch_strmap_free(df->map);
    free(df);
}

typedef struct {
    mch_df *df;
    int oom;
} df_ctx;

static int df_word(void *user, const char *w, size_t len)
{
    df_ctx *c = user;
    int64_t *v = mch_strmap_put(c->df->map, w, len, NULL);
    if (!v) {
        c->oom = 1;
        return 1;
    }
    if ((*v >> 32) != c->df->N) *v = ((int64_t)c->df->N << 32) | ((*v & 0xffffffff) + 1);
    return 0;
}

mch_status mch_df_add_doc(mch_df *df, const char *text, size_t len, mch_err *err)
{
    df->N++;
    df_ctx c = {df, 0};
    mch_status rc = mch_basic_words(text, len, df_word, &c, err);
    if (c.oom) return mch_fail(err, MCH_ERR_NOMEM, "out of memory counting document frequencies");
    return rc; /* df_word stops the walk only on oom: 1 here is mch_basic_words' MCH_ERR_NOMEM */
}

long mch_df_docs(const mch_df *df)
{
    return df->N;
}

long mch_df_get(const mch_df *df, const char *word, size_t len)
{
    int64_t *v = mch_strmap_get(df->map, word, len);
    return v ? (long)(*v & 0xffffffff) : 0;
}

mch_status mch_df_load(mch_df *df, const char *path, size_t max_line_bytes, mch_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return mch_fail(err, MCH_ERR_IO, "%s: %s", path, strerror(errno));
    size_t max = line_max(max_line_bytes);
    char *line = NULL;
    size_t cap = 0;
    long n, lineno = 0;
    int have_n = 0;
    mch_status rc = MCH_OK;
    while (!rc && !(rc = bounded_line(f, path, max, &line, &cap, &n, &lineno, err)) && n >= 0) {
        if (!n) continue;
        char *tab = memchr(line, '\t', (size_t)n), *end;
        if (memchr(line, '\0', (size_t)n)) { /* no word has one; saving would cut the term */
            rc = mch_fail(err, MCH_ERR_FORMAT, "%s:%ld: a NUL byte", path, lineno);
            break;
        }
        if (!tab || tab == line) {
            rc = mch_fail(err, MCH_ERR_FORMAT, "%s:%ld: expected 'term<TAB>df'", path, lineno);
            break;
        }
        errno = 0;
        long v = strtol(tab + 1, &end, 10);
        if (errno || end == tab + 1 || *end || v < 0 || v > 0x7fffffffL) {
            rc = mch_fail(err, MCH_ERR_FORMAT, "%s:%ld: df '%.40s' is not a count", path, lineno,
                          tab + 1);
            break;
        }
        if (tab - line == 2 && !memcmp(line, "#N", 2)) {
            df->N = v;
            have_n = 1;
            continue;
        }
        int64_t *slot = mch_strmap_put(df->map, line, (size_t)(tab - line), NULL);
        if (!slot)
            rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory reading %s", path);
        else
            *slot = v;
    }
    free(line);
    fclose(f);
    if (!rc && !have_n)
        rc = mch_fail(err, MCH_ERR_FORMAT, "%s: no '#N<TAB><documents>' line", path);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

mch_status mch_df_save(const mch_df *df, const char *path, mch_err *err)
{
    size_t n = mch_strmap_size(df->map), pos = 0, i = 0, len;
    const char **keys = malloc((n ? n : 1) * sizeof *keys);
    if (!keys) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    const char *k;
    int64_t v;
    while (mch_strmap_next(df->map, &pos, &k, &len, &v)) keys[i++] = k;
    qsort(keys, n, sizeof *keys, cmp_str);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(keys);
        return mch_fail(err, MCH_ERR_IO, "%s: %s", tmp, strerror(errno));
    }
    fprintf(f, "#N\t%ld\n", df->N);
    for (i = 0; i < n; i++)
        fprintf(f, "%s\t%ld\n", keys[i], mch_df_get(df, keys[i], strlen(keys[i])));
    free(keys);
    int bad = ferror(f) | (fflush(f) != 0) | (fsync(fileno(f)) != 0);
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return mch_fail(err, MCH_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    return MCH_OK;
}

/* ---- the perturber ------------------------------------------------------------------------ */

struct mch_perturber {
    const mch_tok *v;
    int n_special;    /* the post-processor's tokens around the input (MonoT5: the prompt's too) */
    mch_ids frame[3]; /* MonoT5: "Query:", "Document:", "Relevant:" */
    int32_t *tail;    /* MonoT5: "Relevant:" and the single text's suffix (</s>) */
    int n_tail;
    mch_ids whole; /* MonoT5: the whole prompt, to check that it splits at the document */
    bool fold;     /* spelled words are lowercased and unaccented (a cased tokenizer) */
    mch_perturb_opts o;
    mch_strmap *own_stop;
    const mch_strmap *stop;
    struct sb_stemmer *stemmer;
    int32_t filler_id;
    const char **lnc1_vocab; /* sorted candidate words of the df table */
    size_t n_lnc1;
    /* per pair */
    mch_strmap *terms, *stems;
    char *term_buf;
    size_t term_cap;
    int n_terms;
    mch_ids q, d, t, dw; /* dw: lnc2's document as it reads after other words (its copies) */
    int32_t *ids_b, *ids_p, *types, *qids, *seq_b, *seq_p;
    uint8_t *roles, *doc_roles, *query_roles, *seq_roles, *special;
    char word[1024];
    /* the injected term's words (spelled from its wordpieces) and, with stemming, their stems;
     * n_tw 0 when a word of the term cannot be spelled (then it has no occurrences) */
    int n_tw;
    char tw[1024], tws[1024];
    size_t tw_off[128], tw_len[128], tws_off[128], tws_len[128];
};

void mch_perturber_free(mch_perturber *p)
{
    if (!p) return;
    mch_strmap_free(p->own_stop);
    if (p->stemmer) sb_stemmer_delete(p->stemmer);
    free(p->lnc1_vocab);
    mch_strmap_free(p->terms);
    mch_strmap_free(p->stems);
    free(p->term_buf);
    mch_ids_free(&p->q);
    mch_ids_free(&p->d);
    mch_ids_free(&p->t);
    mch_ids_free(&p->dw);
    free(p->ids_b);
    free(p->ids_p);
    free(p->types);
    free(p->qids);
    free(p->roles);
    free(p->doc_roles);
    free(p->query_roles);
    free(p->seq_b);
    free(p->seq_p);
    free(p->seq_roles);
    free(p->special);
    for (int k = 0; k < 3; k++) mch_ids_free(&p->frame[k]);
    free(p->tail);
    mch_ids_free(&p->whole);
    free(p);
}

/* The stem of a word (into p->word's second half), or the word itself without stemming. */
static const char *stem_of(mch_perturber *p, const char *w, size_t len, size_t *out_len)
{
    if (!p->stemmer) {
        *out_len = len;
        return w;
    }
    const sb_symbol *s = sb_stemmer_stem(p->stemmer, (const sb_symbol *)w, (int)len);
    if (!s) {
        *out_len = len;
        return w;
    }
    *out_len = (size_t)sb_stemmer_length(p->stemmer);
    return (const char *)s;
}

static int is_stopword(const mch_perturber *p, const char *w, size_t len)
{
    return mch_strmap_get(p->stop, w, len) != NULL;
}

static int build_lnc1_vocab(mch_perturber *p)
{
    mch_strmap *map = p->o.df->map;
    size_t n = mch_strmap_size(map), pos = 0, len;
    p->lnc1_vocab = malloc((n ? n : 1) * sizeof *p->lnc1_vocab);
    if (!p->lnc1_vocab) return 0;
    const char *k;
    int64_t v;
    while (mch_strmap_next(map, &pos, &k, &len, &v)) {
        int letters = 0;
        for (size_t i = 0; i < len; i++) letters |= (k[i] >= 'a' && k[i] <= 'z');
        if ((v & 0xffffffff) >= 2 && letters && candidate_word(k, len) && !is_stopword(p, k, len))
            p->lnc1_vocab[p->n_lnc1++] = k;
    }
    qsort(p->lnc1_vocab, p->n_lnc1, sizeof *p->lnc1_vocab, cmp_str);
    return 1;
}

/* The MonoT5 prompt's fixed tokens (pygaggle's "Query: {q} Document: {d} Relevant:"), each
 * tokenized as it reads in the prompt, and the last with the template's suffix (</s>) as tail;
 * n_special becomes their count. */
static mch_status monot5_frame(mch_perturber *p, mch_err *err)
{
    static const char *const words[3] = {"Query:", "Document:", "Relevant:"};
    mch_status rc = MCH_OK;
    int n = 0;
    for (int k = 0; k < 3 && !rc; k++) {
        rc = k == 0 ? mch_tok_tokenize(p->v, words[k], strlen(words[k]), &p->frame[k], err)
                    : mch_tok_tokenize_word(p->v, words[k], strlen(words[k]), &p->frame[k], err);
        n += (int)p->frame[k].n;
    }
    if (rc) return rc;
    int suffix = mch_tok_n_special(p->v, false);
    size_t m = p->frame[2].n, all = m + (size_t)suffix;
    int32_t *types = malloc(all * sizeof *types);
    uint8_t *sp = malloc(all);
    p->tail = malloc(all * sizeof *p->tail);
    if (!types || !sp || !p->tail) {
        free(types);
        free(sp);
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    }
    size_t got = mch_tok_assemble(p->v, p->frame[2].ids, m, NULL, 0, p->tail, types, sp);
    /* The suffix must follow the text: a template with tokens before the text is not MonoT5's. */
    int ok = got == all && !memcmp(p->tail, p->frame[2].ids, m * sizeof *p->tail);
    for (size_t i = 0; ok && i < m; i++) ok = !sp[i];
    free(types);
    free(sp);
    if (!ok)
        return mch_fail(err, MCH_ERR_UNSUPPORTED,
                        "the tokenizer's post-processor puts tokens before a text; a MonoT5 "
                        "prompt ends with them only");
    p->n_tail = (int)all;
    p->n_special = n + suffix;
    return MCH_OK;
}

mch_status mch_perturber_create(mch_perturber **out, const mch_tok *v, const mch_perturb_opts *o,
                                mch_err *err)
{
    int n_special = mch_tok_n_special(v, !o->bi);
    if ((o->kind == MCH_PERTURB_TDC || o->kind == MCH_PERTURB_LNC1) && !o->df)
        return mch_fail(err, MCH_ERR_ARG, "perturbation %s needs document frequencies",
                        mch_perturb_name(o->kind));
    int min_len = n_special + (o->bi ? 1 : 2);
    if (o->monot5 && o->bi)
        return mch_fail(err, MCH_ERR_ARG, "a MonoT5 is a cross-encoder, not a bi-encoder");
    if (o->max_len < min_len)
        return mch_fail(err, MCH_ERR_ARG, "max_len %d is too small (at least %d)", o->max_len,
                        min_len);
    if (o->pos == MCH_POS_INDEX && o->pos_index < 0)
        return mch_fail(err, MCH_ERR_ARG, "position %d is negative", o->pos_index);
    if (o->kind == MCH_PERTURB_LNC2 && o->pos != MCH_POS_END)
        return mch_fail(err, MCH_ERR_ARG,
                        "lnc2 appends the document's copies after it: position end only");
    mch_perturber *p = calloc(1, sizeof *p);
    if (!p) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    p->v = v;
    p->n_special = n_special;
    p->fold = !mch_tok_uncased(v);
    p->o = *o;
    if (!p->o.filler) p->o.filler = "a";
    if (p->o.max_query_len <= 0) p->o.max_query_len = 64;
    size_t T = (size_t)o->max_len;
    mch_status rc = MCH_OK;
    p->stop = o->stopwords;
    if (!p->stop && !(p->stop = p->own_stop = mch_stopwords_default()))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc && o->stem && !(p->stemmer = sb_stemmer_new("english", "UTF_8")))
        rc = mch_fail(err, MCH_ERR_UNSUPPORTED, "the Snowball English stemmer is unavailable");
    if (!rc &&
        !((p->terms = mch_strmap_create()) && (p->stems = mch_strmap_create()) &&
          (p->ids_b = malloc(T * 4)) && (p->ids_p = malloc(T * 4)) && (p->types = malloc(T * 4)) &&
          (p->qids = malloc(T * 4)) && (p->roles = malloc(T)) && (p->doc_roles = malloc(T)) &&
          (p->query_roles = malloc(T)) && (p->seq_b = malloc(T * 4)) &&
          (p->seq_p = malloc(T * 4)) && (p->seq_roles = malloc(T)) && (p->special = malloc(T))))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc) {
        mch_ids f = {0};
        rc = mch_tok_tokenize_word(v, p->o.filler, strlen(p->o.filler), &f, err);
        if (!rc && f.n != 1)
            rc = mch_fail(err, MCH_ERR_ARG, "filler '%s' is %zu tokens; it must be exactly one",
                          p->o.filler, f.n);
        if (!rc) p->filler_id = f.ids[0];
        mch_ids_free(&f);
    }
    if (!rc && o->monot5) rc = monot5_frame(p, err);
    if (!rc && o->kind == MCH_PERTURB_LNC1 && !build_lnc1_vocab(p))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (rc) {
        mch_perturber_free(p);
        return rc;
    }
    *out = p;
    return MCH_OK;
}

typedef struct {
    mch_perturber *p;
    int oom;
} terms_ctx;

static int add_term(void *user, const char *w, size_t len)
{
    terms_ctx *c = user;
    mch_perturber *p = c->p;
    if (!candidate_word(w, len) || is_stopword(p, w, len)) return 0;
    int added;
    int64_t *slot = mch_strmap_put(p->terms, w, len, &added);
    if (!slot) goto oom;
    if (!added) return 0;
    *slot = p->n_terms++;
    if (p->stemmer) {
        size_t sl;
        const char *s = stem_of(p, w, len, &sl);
        if (!mch_strmap_put(p->stems, s, sl, NULL)) goto oom;
    }
    return 0;
oom:
    c->oom = 1;
    return 1;
}

/* Rebuilds p->terms (word -> order) and p->stems for a query. */
static mch_status collect_terms(mch_perturber *p, const char *query, mch_err *err)
{
    mch_strmap_clear(p->terms);
    mch_strmap_clear(p->stems);
    p->n_terms = 0;
    terms_ctx c = {p, 0};
    mch_status rc = mch_basic_words(query, strlen(query), add_term, &c, err);
    if (c.oom) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    return rc;
}

/* The query terms in order of first occurrence (pointers into the terms map's arena). */
static int ordered_terms(mch_perturber *p, const char **terms, size_t *lens)
{
    size_t pos = 0, len;
    const char *k;
    int64_t v;
    while (mch_strmap_next(p->terms, &pos, &k, &len, &v)) {
        terms[v] = k;
        lens[v] = len;
    }
    return p->n_terms;
}

int mch_query_terms(mch_perturber *p, const char *query, char *buf, size_t cap, mch_err *err)
{
    if (collect_terms(p, query, err)) return -1;
    const char *terms[512];
    size_t lens[512], off = 0;
    int n = p->n_terms < 512 ? ordered_terms(p, terms, lens) : 0;
    for (int i = 0; i < n; i++) {
        if (off + lens[i] + 1 > cap) {
            mch_fail(err, MCH_ERR_ARG, "query terms do not fit %zu bytes", cap);
            return -1;
        }
        memcpy(buf + off, terms[i], lens[i]);
        buf[off + lens[i]] = 0;
        off += lens[i] + 1;
    }
    return n;
}

static int is_query_term(mch_perturber *p, const char *w, size_t len)
{
    if (is_stopword(p, w, len)) return 0;
    if (mch_strmap_get(p->terms, w, len)) return 1;
    if (!p->stemmer) return 0;
    size_t sl;
    const char *s = stem_of(p, w, len, &sl);
    return mch_strmap_get(p->stems, s, sl) != NULL;
}

/* Picks the term to inject into out->term, or sets out->skip. */
static mch_status choose_term(mch_perturber *p, const char *term, uint64_t *rng, mch_pair *out,
                              mch_err *err)
{
    const char *terms[512];
    size_t lens[512];
    int n = p->n_terms < 512 ? ordered_terms(p, terms, lens) : 0;
    const char *pick = NULL;
    size_t pick_len = 0;
    (void)err;
    switch (p->o.kind) {
    case MCH_PERTURB_LNC2:
        return MCH_OK; /* no term: the document's own copies */
    case MCH_PERTURB_TFC1:
    case MCH_PERTURB_REPLACE:
    case MCH_PERTURB_TFC2:
    case MCH_PERTURB_TDC:
        if (!n) {
            snprintf(out->skip, sizeof out->skip,
                     "no query term (after stopwords and words shorter than 3 characters)");
            return MCH_OK;
        }
        if (p->o.kind != MCH_PERTURB_TDC) { /* tfc1's draw: the same term for the same pair */
            int i = (int)rng_below(rng, (uint64_t)n);
            pick = terms[i], pick_len = lens[i];
        } else {
            long best = -1;
            for (int i = 0; i < n; i++) {
                long df = mch_df_get(p->o.df, terms[i], lens[i]);
                if (best < 0 || df < best) best = df, pick = terms[i], pick_len = lens[i];
            }
        }
        break;
    case MCH_PERTURB_LNC1:
        for (int tries = 0; p->n_lnc1 && tries < 256 && !pick; tries++) {
            const char *w = p->lnc1_vocab[rng_below(rng, p->n_lnc1)];
            size_t wl = strlen(w);
            if (!is_query_term(p, w, wl)) pick = w, pick_len = wl;
        }
        if (!pick) {
            snprintf(out->skip, sizeof out->skip, "no collection word outside the query found");
            return MCH_OK;
        }
        break;
    case MCH_PERTURB_INJECT:
        pick = term && *term ? term : p->o.term;
        if (!pick || !*pick) {
            snprintf(out->skip, sizeof out->skip, "no term to inject (no term column or --term)");
            return MCH_OK;
        }
        pick_len = strlen(pick);
        break;
    case MCH_PERTURB_COUNT:
        break;
    }
    if (pick_len >= sizeof out->term) {
        snprintf(out->skip, sizeof out->skip, "term of %zu bytes is too long", pick_len);
        return MCH_OK;
    }
    memcpy(out->term, pick, pick_len);
    out->term[pick_len] = 0;
    return MCH_OK;
}

/* ---- token roles (see perturb.h) ------------------------------------------------------------ */

static bool wordish(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c >= 0x80;
}

/* The end of the word that starts at piece i of ids[0..n): the next piece that starts a word
 * (mch_tok_piece), or is glued to its neighbour without letters or digits on both sides, or n.
 * A piece that is only a word-start mark takes the glued piece after it into its word. */
static int word_end(const mch_tok *v, const int32_t *ids, int i, int n)
{
    char a[256], b[256];
    size_t al = 0, bl;
    if (mch_tok_piece(v, ids[i], a, sizeof a, &al) < 0) al = 0;
    int j = i + 1;
    for (; j < n; j++) {
        int k = mch_tok_piece(v, ids[j], b, sizeof b, &bl);
        if (k == MCH_PIECE_START || k < 0) break;
        /* glued to a bare word-start mark ("▁" before "Compression") or letters to letters */
        if (k == MCH_PIECE_GLUED && al &&
            (!bl || !wordish((unsigned char)a[al - 1]) || !wordish((unsigned char)b[0])))
            break;
        memcpy(a, b, bl + 1);
        al = bl;
    }
    return j;
}

/* Lowercases and strips accents from buf[0..*len) in place (NFD, marks dropped, case folded), as
 * mch_basic_words spells query terms; 0 when the result does not fit cap bytes. */
static int fold_word(char *buf, size_t cap, size_t *len)
{
    utf8proc_uint8_t *o = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)buf, (utf8proc_ssize_t)*len, &o,
                                      UTF8PROC_DECOMPOSE | UTF8PROC_STRIPMARK | UTF8PROC_CASEFOLD);
    int ok = n >= 0 && (size_t)n < cap;
    if (ok) {
        memcpy(buf, o, (size_t)n + 1);
        *len = (size_t)n;
    }
    free(o);
    return ok;
}

int mch_word_spell(const mch_tok *v, int fold, const int32_t *ids, int i, int j, char *buf,
                   size_t cap, size_t *len)
{
    size_t wl = 0, cl;
    for (int k = i; k < j; k++) {
        if (ids[k] == mch_tok_unk(v) || mch_tok_piece(v, ids[k], buf + wl, cap - wl, &cl) < 0)
            return 0;
        wl += cl;
    }
    buf[wl] = 0;
    *len = wl;
    return !fold || fold_word(buf, cap, len);
}

static int spell(const mch_perturber *p, const int32_t *ids, int i, int j, char *buf, size_t cap,
                 size_t *len)
{
    return mch_word_spell(p->v, p->fold, ids, i, j, buf, cap, len);
}

/* Splits the term's wordpieces p->t into words and keeps their spellings (and stems). */
static void term_words(mch_perturber *p)
{
    const int32_t *ids = p->t.ids;
    int n = (int)p->t.n;
    size_t off = 0, soff = 0;
    p->n_tw = 0;
    for (int i = 0; i < n;) {
        int j = word_end(p->v, ids, i, n);
        size_t wl, sl;
        int k = p->n_tw;
        if (k == 128 || !spell(p, ids, i, j, p->tw + off, sizeof p->tw - off, &wl)) {
            p->n_tw = 0;
            return;
        }
        p->tw_off[k] = off, p->tw_len[k] = wl;
        off += wl + 1;
        if (p->stemmer) {
            const char *st = stem_of(p, p->tw + p->tw_off[k], wl, &sl);
            if (soff + sl >= sizeof p->tws) {
                p->n_tw = 0;
                return;
            }
            memcpy(p->tws + soff, st, sl);
            p->tws_off[k] = soff, p->tws_len[k] = sl;
            soff += sl;
        }
        p->n_tw++;
        i = j;
    }
}

/* 1 when the word of pieces ids[i..j) is the term's k-th word: the same spelling or, with
 * stemming, the same stem. */
static int is_term_word(mch_perturber *p, const int32_t *ids, int i, int j, int k)
{
    char w[sizeof p->word];
    size_t wl, sl;
    if (!spell(p, ids, i, j, w, sizeof w, &wl)) return 0;
    if (wl == p->tw_len[k] && !memcmp(w, p->tw + p->tw_off[k], wl)) return 1;
    if (!p->stemmer) return 0;
    const char *st = stem_of(p, w, wl, &sl);
    return sl == p->tws_len[k] && !memcmp(st, p->tws + p->tws_off[k], sl);
}

/* Roles of the pieces ids[0..n) of the query or the document (before injection, cut to the
 * window): every piece of a run of words spelling the term's words in order gets role_term;
 * other pieces get role_match when match_terms is set and their word is a query term, else
 * role_other. */
static void segment_roles(mch_perturber *p, const int32_t *ids, int n, uint8_t *roles,
                          uint8_t role_term, int match_terms, uint8_t role_match,
                          uint8_t role_other)
{
    for (int i = 0; i < n;) {
        int j = word_end(p->v, ids, i, n);
        size_t wl;
        int match = match_terms && spell(p, ids, i, j, p->word, sizeof p->word, &wl) &&
                    is_query_term(p, p->word, wl);
        memset(roles + i, match ? role_match : role_other, (size_t)(j - i));
        i = j;
    }
    for (int i = 0; p->n_tw && i < n; i = word_end(p->v, ids, i, n)) {
        int e = i, k = 0;
        for (; k < p->n_tw && e < n; k++) {
            int j = word_end(p->v, ids, e, n);
            if (!is_term_word(p, ids, e, j, k)) break;
            e = j;
        }
        if (k == p->n_tw) memset(roles + i, role_term, (size_t)(e - i));
    }
}

/* Whether the whole prompt's tokens are the frame's, the query's and the document's side by side
 * (so the document's tokens can be cut and injected into without changing the rest). */
static mch_status monot5_splits(mch_perturber *p, const char *query, const char *text, int *split,
                                mch_err *err)
{
    size_t ql = strlen(query), dl = strlen(text), n = ql + dl + 40;
    char *s = malloc(n);
    if (!s) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    int len = snprintf(s, n, "Query: %s Document: %s Relevant:", query, text);
    p->whole.n = 0;
    mch_status rc = mch_tok_tokenize(p->v, s, (size_t)len, &p->whole, err);
    free(s);
    if (rc) return rc;
    const mch_ids *parts[5] = {&p->frame[0], &p->q, &p->frame[1], &p->d, &p->frame[2]};
    size_t at = 0;
    *split = 1;
    for (int k = 0; k < 5 && *split; k++) {
        *split = at + parts[k]->n <= p->whole.n &&
                 (parts[k]->n == 0 ||
                  !memcmp(p->whole.ids + at, parts[k]->ids, parts[k]->n * sizeof *p->whole.ids));
        at += parts[k]->n;
    }
    *split = *split && at == p->whole.n;
    return MCH_OK;
}

mch_status mch_monot5_prompt_splits(mch_perturber *p, const char *query, const char *text,
                                    int *split, mch_err *err)
{
    p->q.n = p->d.n = 0;
    mch_status rc = mch_tok_tokenize(p->v, query, strlen(query), &p->q, err);
    if (!rc) rc = mch_tok_tokenize(p->v, text, strlen(text), &p->d, err);
    return rc ? rc : monot5_splits(p, query, text, split, err);
}

int mch_perturber_n_special(const mch_perturber *p)
{
    return p->n_special;
}

static int put_ids(int32_t *ids, uint8_t *special, int T, const int32_t *src, int n, uint8_t sp)
{
    memcpy(ids + T, src, (size_t)n * sizeof *ids);
    if (special) memset(special + T, sp, (size_t)n);
    return T + n;
}

int mch_monot5_assemble(const mch_perturber *p, const int32_t *q, int nq, const int32_t *d, int nd,
                        int32_t *ids, uint8_t *special)
{
    int T = put_ids(ids, special, 0, p->frame[0].ids, (int)p->frame[0].n, 1);
    T = put_ids(ids, special, T, q, nq, 0);
    T = put_ids(ids, special, T, p->frame[1].ids, (int)p->frame[1].n, 1);
    T = put_ids(ids, special, T, d, nd, 0);
    return put_ids(ids, special, T, p->tail, p->n_tail, 1);
}

/* "Query:" q "Document:" d' "Relevant:" </s>; the prompt's own tokens take the role sep, the
 * text's theirs (p->seq_roles: the query's, then the document's). */
static int monot5_layout(mch_perturber *p, int nq, int S)
{
    int T = mch_monot5_assemble(p, p->q.ids, nq, p->seq_b, S, p->ids_b, p->special);
    mch_monot5_assemble(p, p->q.ids, nq, p->seq_p, S, p->ids_p, NULL);
    for (int t = 0, r = 0; t < T; t++)
        p->roles[t] = p->special[t] ? MCH_ROLE_SEP : p->seq_roles[r++];
    return T;
}

/* Appends n positions to the document's two sequences from S on: b[i] to the baseline and
 * pert[i] to the perturbed one (NULL: the filler), with roles[i] (roles NULL: role r). Returns
 * the new length. */
static int seq_put(mch_perturber *p, int S, int base, const int32_t *b, const int32_t *pert, int n,
                   const uint8_t *roles, uint8_t r)
{
    for (int i = 0; i < n; i++, S++) {
        p->seq_b[S] = b ? b[i] : p->filler_id;
        p->seq_p[S] = pert ? pert[i] : p->filler_id;
        p->seq_roles[base + S] = roles ? roles[i] : r;
    }
    return S;
}

/* tfc1, tdc, lnc1, inject: the term (fillers in the baseline) after the document's first pos
 * tokens; tfc2 puts the term in both first, so only its second occurrence differs. */
static int seq_insert(mch_perturber *p, int nd, int pos, int base)
{
    const int32_t *d = p->d.ids, *t = p->t.ids;
    int nt = (int)p->t.n;
    int S = seq_put(p, 0, base, d, d, pos, p->doc_roles, 0);
    if (p->o.kind == MCH_PERTURB_TFC2) S = seq_put(p, S, base, t, t, nt, NULL, MCH_ROLE_DOC_TERM);
    S = seq_put(p, S, base, NULL, t, nt, NULL, MCH_ROLE_INJECTED);
    return seq_put(p, S, base, d + pos, d + pos, nd - pos, p->doc_roles + pos, 0);
}

/* replace's word among the document's first nd tokens: a whole word inside the window (not cut
 * by it) of at least 3 characters with a letter or digit that is neither a stopword nor a query
 * term (nor, with stemming, one by its stem). Position start: the first such word; end: the
 * last; an index N: the first that starts at document token N or later, else the last before
 * it. Its tokens are [*ws, *we); 0 when the document has none. */
static int replace_word(mch_perturber *p, int nd, int *ws, int *we)
{
    const int32_t *d = p->d.ids;
    int found = 0;
    for (int i = 0; i < nd;) {
        int j = word_end(p->v, d, i, nd);
        size_t wl;
        int ok = word_end(p->v, d, i, (int)p->d.n) == j &&
                 spell(p, d, i, j, p->word, sizeof p->word, &wl) && candidate_word(p->word, wl) &&
                 !is_stopword(p, p->word, wl) && !is_query_term(p, p->word, wl);
        if (ok) {
            *ws = i, *we = j, found = 1;
            if (p->o.pos == MCH_POS_START || (p->o.pos == MCH_POS_INDEX && i >= p->o.pos_index))
                return 1;
        }
        i = j;
    }
    return found;
}

/* replace (TFC1-R): the word's m tokens in the baseline, the term's nt in the perturbed input,
 * the shorter side padded with fillers after its tokens (MechIR's pad_by_perturb_type
 * "replace"): max(m, nt) positions with the role injected. */
static int seq_replace(mch_perturber *p, int nd, int base, int *pos, int *n_inj, mch_pair *out)
{
    int ws, we;
    if (!replace_word(p, nd, &ws, &we)) {
        snprintf(out->skip, sizeof out->skip,
                 "no document word to replace (each is a query term, a stopword or shorter than "
                 "3 characters)");
        return -1;
    }
    const int32_t *d = p->d.ids;
    int m = we - ws, nt = (int)p->t.n, span = m > nt ? m : nt;
    int S = seq_put(p, 0, base, d, d, ws, p->doc_roles, 0);
    for (int i = 0; i < span; i++, S++) {
        p->seq_b[S] = i < m ? d[ws + i] : p->filler_id;
        p->seq_p[S] = i < nt ? p->t.ids[i] : p->filler_id;
        p->seq_roles[base + S] = MCH_ROLE_INJECTED;
    }
    *pos = ws;
    *n_inj = span;
    return seq_put(p, S, base, d + we, d + we, nd - we, p->doc_roles + we, 0);
}

/* lnc2: the document's nd tokens, then k - 1 copies of them as they read after other words (dw:
 * a byte-level BPE's "Ġ" on the first word; delta more tokens than d), fillers in the baseline:
 * k = 1 + (room0 - nd) / (nd + delta), as many whole copies as fit. The copy is dw's first
 * nd + delta tokens, which holds only when d and dw agree after the first word. */
static int seq_lnc2(mch_perturber *p, int nd, int room0, int delta, int base, int *n_inj,
                    mch_pair *out)
{
    const int32_t *d = p->d.ids, *dw = p->dw.ids;
    int n = (int)p->d.n, e = n ? word_end(p->v, d, 0, n) : 0, nc = nd + delta;
    int same = nd >= 1 && nd >= e && nc >= 1;
    for (int i = e; same && i < n; i++) same = d[i] == dw[i + delta];
    if (!same || nd + nc > room0) {
        snprintf(out->skip, sizeof out->skip,
                 nd < e || nd < 1 || nd + nc > room0
                     ? "no room for two copies of the document's first word within max_len"
                     : "the document's tokens after a space differ beyond its first word");
        return -1;
    }
    int k = 1 + (room0 - nd) / nc;
    int S = seq_put(p, 0, base, d, d, nd, p->doc_roles, 0);
    for (int c = 1; c < k; c++) S = seq_put(p, S, base, NULL, dw, nc, NULL, MCH_ROLE_INJECTED);
    *n_inj = (k - 1) * nc;
    return S;
}

mch_status mch_perturb(mch_perturber *p, const char *qid, const char *query, const char *docno,
                       const char *text, const char *term, mch_pair *out, mch_err *err)
{
    memset(out, 0, sizeof *out);
    out->pair_id = mch_pair_id(qid, docno);
    uint64_t rng = mch_pair_seed(p->o.seed, out->pair_id);
    const mch_tok *v = p->v;
    mch_status rc = collect_terms(p, query, err);
    if (rc) return rc;
    if ((rc = choose_term(p, term, &rng, out, err)) || out->skip[0]) return rc;
    p->q.n = p->d.n = p->t.n = 0;
    if ((rc = mch_tok_tokenize_word(v, out->term, strlen(out->term), &p->t, err)) ||
        (rc = mch_tok_tokenize(v, query, strlen(query), &p->q, err)) ||
        (rc = mch_tok_tokenize(v, text, strlen(text), &p->d, err)))
        return rc;
    if (p->o.monot5) {
        int split = 0;
        if ((rc = monot5_splits(p, query, text, &split, err))) return rc;
        if (!split) {
            snprintf(out->skip, sizeof out->skip,
                     "the prompt's tokens do not split where the query and the document meet "
                     "the prompt's words");
            return MCH_OK;
        }
    }
    int nt = (int)p->t.n, max_len = p->o.max_len, ns = p->n_special;
    mch_perturb_kind kind = p->o.kind;
    if (!nt && kind != MCH_PERTURB_LNC2) {
        snprintf(out->skip, sizeof out->skip, "term '%.60s' has no tokens", out->term);
        return MCH_OK;
    }
    int nq = (int)p->q.n < p->o.max_query_len ? (int)p->q.n : p->o.max_query_len;
    if (p->o.bi && nq > max_len - ns) nq = max_len - ns;
    /* room0: the text tokens the document may take; room: what is left beside the added ones */
    int room0 = p->o.bi ? max_len - ns : max_len - nq - ns;
    int room = room0 - (kind == MCH_PERTURB_TFC2      ? 2 * nt
                        : kind == MCH_PERTURB_REPLACE ? nt - 1
                        : kind == MCH_PERTURB_LNC2    ? 0
                                                      : nt);
    if (room < 0) {
        snprintf(out->skip, sizeof out->skip,
                 "the term's %d tokens do not fit max_len %d beside the query's %d", nt, max_len,
                 nq);
        return MCH_OK;
    }
    int lnc2_delta = 0;
    if (kind == MCH_PERTURB_LNC2) {
        p->dw.n = 0;
        if ((rc = mch_tok_tokenize_word(v, text, strlen(text), &p->dw, err))) return rc;
        lnc2_delta = (int)p->dw.n - (int)p->d.n;
        room = (room0 - (lnc2_delta > 0 ? lnc2_delta : 0)) / 2; /* two copies at least */
    }
    int nd = (int)p->d.n < room ? (int)p->d.n : room;
    int pos = p->o.pos == MCH_POS_START ? 0 : p->o.pos == MCH_POS_END ? nd : p->o.pos_index;
    if (pos > nd) pos = nd;
    term_words(p);
    if (!p->o.bi)
        segment_roles(p, p->q.ids, nq, p->query_roles, MCH_ROLE_QUERY_TERM, 0, MCH_ROLE_QUERY_OTHER,
                      MCH_ROLE_QUERY_OTHER);
    segment_roles(p, p->d.ids, nd, p->doc_roles, MCH_ROLE_DOC_TERM, 1, MCH_ROLE_DOC_MATCH,
                  MCH_ROLE_DOC_OTHER);
    /* The document perturbed (seq_p) and its baseline (seq_b); roles of the text tokens in the
     * order the template takes them (the query first). */
    int base = p->o.bi ? 0 : nq, nr = 0, n_inj = nt;
    int S = kind == MCH_PERTURB_REPLACE ? seq_replace(p, nd, base, &pos, &n_inj, out)
            : kind == MCH_PERTURB_LNC2  ? seq_lnc2(p, nd, room0, lnc2_delta, base, &n_inj, out)
                                        : seq_insert(p, nd, pos, base);
    if (S < 0) return MCH_OK; /* out->skip says why */
    memcpy(p->seq_roles, p->query_roles, (size_t)base);
    const int32_t *qa = p->o.bi ? NULL : p->q.ids;
    if (p->o.monot5) {
        out->T = monot5_layout(p, nq, S);
        memset(p->types, 0, (size_t)out->T * sizeof *p->types);
        goto done;
    }
    int T =
        (int)mch_tok_assemble(v, p->o.bi ? p->seq_b : qa, p->o.bi ? (size_t)S : (size_t)nq,
                              p->o.bi ? NULL : p->seq_b, (size_t)S, p->ids_b, p->types, p->special);
    mch_tok_assemble(v, p->o.bi ? p->seq_p : qa, p->o.bi ? (size_t)S : (size_t)nq,
                     p->o.bi ? NULL : p->seq_p, (size_t)S, p->ids_p, p->types, NULL);
    for (int t = 0; t < T; t++)
        p->roles[t] = !p->special[t] ? p->seq_roles[nr++] : t == 0 ? MCH_ROLE_CLS : MCH_ROLE_SEP;
    out->T = T;
done:
    out->position = pos;
    out->n_term = n_inj;
    out->ids_baseline = p->ids_b;
    out->ids_perturbed = p->ids_p;
    out->token_types = p->types;
    out->roles = p->roles;
    if (p->o.bi) {
        /* the query's token types are not used: seq_b is free scratch by now */
        out->Tq = (int)mch_tok_assemble(v, p->q.ids, (size_t)nq, NULL, 0, p->qids, p->seq_b, NULL);
        out->query_ids = p->qids;
    }
    return MCH_OK;
}
