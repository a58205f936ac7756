/* Unit tests of the per-pair output writer (coordinator/pairs_writer.c): the same lines through
 * both formats; the .zst split into frames with ZSTD_findFrameCompressedSize, each frame
 * decompressed alone to exactly 64 whole lines (the last one the rest) and the concatenation
 * equal to the plain file byte for byte; lines longer than the stream's buffer; no lines (one
 * empty frame); a cut inside the last frame refused by the project's .zst line reader; commit
 * removing the other format's file, abort leaving nothing. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <zstd.h>

#include "input.h"
#include "pairs_writer.h"
#include "testutil.h"

typedef struct {
    char dir[4096];
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    if (tu_tmpdir_make(fx->dir, sizeof fx->dir, "mch_pairsw")) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    int rc = tu_tmpdir_remove(fx->dir);
    free(fx);
    return rc;
}

static char *at(const fixture *fx, const char *name)
{
    static char buf[4][4400];
    static int slot;
    char *p = buf[slot++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", fx->dir, name);
    return p;
}

static int dir_entries(const fixture *fx)
{
    int n = 0;
    DIR *d = opendir(fx->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    if (d) closedir(d);
    return n;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Line i: a pair-like JSON object whose length varies with i; every big_every-th line is
 * big_bytes long (over the stream's buffer). */
static void write_line(FILE *f, int i, int big_every, size_t big_bytes)
{
    fprintf(f, "{\"index\":%d,\"pad\":\"", i);
    size_t n = big_every && i % big_every == 3 ? big_bytes : (size_t)(i * 37 % 500);
    for (size_t k = 0; k < n; k++) putc('a' + (int)((k * 7 + (size_t)i) % 26), f);
    fputs("\"}\n", f);
}

static void write_both(const fixture *fx, int lines, int big_every, size_t big_bytes)
{
    for (int fmt = 0; fmt < 2; fmt++) {
        mch_pairs_writer *w = NULL;
        mch_err err = {0};
        assert_int_equal(mch_pairs_writer_open(&w, fx->dir, (mch_pairs_format)fmt, &err), MCH_OK);
        FILE *f = mch_pairs_writer_file(w);
        for (int i = 0; i < lines; i++) write_line(f, i, big_every, big_bytes);
        mch_status rc = mch_pairs_writer_commit(w, &err);
        if (rc) fail_msg("commit: %s", err.msg);
        /* The plain file is moved aside so the next format's commit does not remove it. */
        if (fmt == MCH_PAIRS_JSONL)
            assert_int_equal(rename(at(fx, "pairs.jsonl"), at(fx, "plain")), 0);
        else
            assert_int_equal(rename(at(fx, "pairs.jsonl.zst"), at(fx, "zst")), 0);
    }
}

/* Checks fx's "zst" against "plain" frame by frame; @return the number of frames. */
static size_t check_frames(const fixture *fx, int lines)
{
    size_t zlen, plen;
    uint8_t *z = slurp(at(fx, "zst"), &zlen), *plain = slurp(at(fx, "plain"), &plen);
    ZSTD_DCtx *d = ZSTD_createDCtx();
    assert_non_null(d);
    size_t cap = plen + 1, pos = 0, off = 0, frames = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    while (pos < zlen) {
        size_t fsz = ZSTD_findFrameCompressedSize(z + pos, zlen - pos);
        if (ZSTD_isError(fsz))
            fail_msg("frame %zu at %zu: %s", frames, pos, ZSTD_getErrorName(fsz));
        /* The frame alone, in a fresh decoder state: nothing before it is needed. */
        assert_int_equal(ZSTD_DCtx_reset(d, ZSTD_reset_session_only), 0);
        ZSTD_inBuffer in = {z + pos, fsz, 0};
        ZSTD_outBuffer o = {out + off, cap - off, 0};
        size_t r = ZSTD_decompressStream(d, &o, &in);
        if (ZSTD_isError(r)) fail_msg("frame %zu: %s", frames, ZSTD_getErrorName(r));
        assert_int_equal(r, 0); /* the frame is complete */
        assert_int_equal(in.pos, fsz);
        size_t nl = 0;
        for (size_t k = 0; k < o.pos; k++) nl += out[off + k] == '\n';
        size_t want = (size_t)lines - frames * MCH_PAIRS_LINES_PER_FRAME;
        if (want > MCH_PAIRS_LINES_PER_FRAME) want = MCH_PAIRS_LINES_PER_FRAME;
        if (nl != want) fail_msg("frame %zu has %zu lines, want %zu", frames, nl, want);
        if (o.pos) assert_int_equal(out[off + o.pos - 1], '\n');
        off += o.pos;
        pos += fsz;
        frames++;
    }
    assert_int_equal(off, plen);
    assert_memory_equal(out, plain, plen);
    ZSTD_freeDCtx(d);
    free(out);
    free(z);
    free(plain);
    return frames;
}

static void test_pairs_zst_frames_are_64_whole_lines_equal_to_plain(void **state)
{
    fixture *fx = *state;
    write_both(fx, 200, 0, 0);
    assert_int_equal(check_frames(fx, 200), 4); /* 64 + 64 + 64 + 8 */
}

static void test_pairs_zst_exact_multiple_has_no_empty_tail_frame(void **state)
{
    fixture *fx = *state;
    write_both(fx, 128, 0, 0);
    assert_int_equal(check_frames(fx, 128), 2);
}

static void test_pairs_zst_lines_longer_than_the_stream_buffer(void **state)
{
    fixture *fx = *state;
    write_both(fx, 150, 16, (size_t)700 * 1024); /* 10 lines of 700 KB */
    assert_int_equal(check_frames(fx, 150), 3);
}

static void test_pairs_zst_no_lines_is_one_empty_frame(void **state)
{
    fixture *fx = *state;
    write_both(fx, 0, 0, 0);
    assert_int_equal(check_frames(fx, 0), 1);
}

static void test_pairs_zst_cut_inside_last_frame_is_refused(void **state)
{
    fixture *fx = *state;
    write_both(fx, 100, 0, 0);
    size_t zlen;
    uint8_t *z = slurp(at(fx, "zst"), &zlen);
    size_t first = ZSTD_findFrameCompressedSize(z, zlen);
    assert_false(ZSTD_isError(first));
    assert_true(first < zlen);
    size_t cut = first + (zlen - first) / 2;
    FILE *f = fopen(at(fx, "cut.jsonl.zst"), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(z, 1, cut, f), cut);
    fclose(f);
    free(z);
    mch_lines *l = NULL;
    mch_err err = {0};
    assert_int_equal(mch_lines_open(&l, at(fx, "cut.jsonl.zst"), 0, &err), MCH_OK);
    char *line;
    size_t len;
    long lineno = 0, n = 0;
    mch_status rc;
    while ((rc = mch_lines_next(l, &line, &len, &lineno, &err)) == MCH_OK && line) n++;
    mch_lines_close(l);
    assert_int_equal(rc, MCH_ERR_ZSTD);
    assert_non_null(strstr(err.msg, "cut.jsonl.zst: truncated zstd stream"));
    assert_true(n >= MCH_PAIRS_LINES_PER_FRAME && n < 100); /* the whole first frame, not all */
}

static void test_pairs_commit_removes_the_other_format(void **state)
{
    fixture *fx = *state;
    mch_err err = {0};
    for (int round = 0; round < 3; round++) {
        mch_pairs_format fmt = round % 2 ? MCH_PAIRS_JSONL : MCH_PAIRS_ZST;
        mch_pairs_writer *w = NULL;
        assert_int_equal(mch_pairs_writer_open(&w, fx->dir, fmt, &err), MCH_OK);
        write_line(mch_pairs_writer_file(w), round, 0, 0);
        assert_int_equal(mch_pairs_writer_commit(w, &err), MCH_OK);
        struct stat sb;
        assert_int_equal(stat(at(fx, mch_pairs_file_name(fmt)), &sb), 0);
        assert_int_equal(dir_entries(fx), 1);
    }
}

static void test_pairs_abort_leaves_nothing(void **state)
{
    fixture *fx = *state;
    mch_err err = {0};
    for (int fmt = 0; fmt < 2; fmt++) {
        mch_pairs_writer *w = NULL;
        assert_int_equal(mch_pairs_writer_open(&w, fx->dir, (mch_pairs_format)fmt, &err), MCH_OK);
        for (int i = 0; i < 100; i++) write_line(mch_pairs_writer_file(w), i, 0, 0);
        mch_pairs_writer_abort(w);
        assert_int_equal(dir_entries(fx), 0);
    }
    mch_pairs_writer_abort(NULL);
}

static void test_pairs_open_in_missing_dir_names_the_path(void **state)
{
    fixture *fx = *state;
    mch_pairs_writer *w = (mch_pairs_writer *)1;
    mch_err err = {0};
    assert_int_equal(mch_pairs_writer_open(&w, at(fx, "nope"), MCH_PAIRS_ZST, &err), MCH_ERR_IO);
    assert_null(w);
    assert_non_null(strstr(err.msg, "nope/pairs.jsonl.zst"));
}

static void test_pairs_format_parse(void **state)
{
    (void)state;
    mch_pairs_format f = MCH_PAIRS_JSONL;
    assert_int_equal(mch_pairs_format_parse("zst", &f), 0);
    assert_int_equal(f, MCH_PAIRS_ZST);
    assert_int_equal(mch_pairs_format_parse("jsonl", &f), 0);
    assert_int_equal(f, MCH_PAIRS_JSONL);
    assert_int_equal(mch_pairs_format_parse("zstd", &f), -1);
    assert_int_equal(mch_pairs_format_parse("", &f), -1);
    assert_string_equal(mch_pairs_file_name(MCH_PAIRS_ZST), "pairs.jsonl.zst");
    assert_string_equal(mch_pairs_file_name(MCH_PAIRS_JSONL), "pairs.jsonl");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pairs_zst_frames_are_64_whole_lines_equal_to_plain,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pairs_zst_exact_multiple_has_no_empty_tail_frame,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_pairs_zst_lines_longer_than_the_stream_buffer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pairs_zst_no_lines_is_one_empty_frame, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pairs_zst_cut_inside_last_frame_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pairs_commit_removes_the_other_format, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pairs_abort_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pairs_open_in_missing_dir_names_the_path, setup,
                                        teardown),
        cmocka_unit_test(test_pairs_format_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
