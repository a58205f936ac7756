/* The circuit map: packed in the canonical form it is given, unpacked with every count and shape
 * validated (a .cmap from another site is untrusted). The statistics are msg_stats.c's. */
#include "msg_pb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perturb.h"
#include "strmap.h"

/* ---- circuit maps ------------------------------------------------------------------------- */

/* The cells of each estimate (mch_cmap_ests' order) for a model of L layers (HR rows of heads:
 * mch_spec_head_rows) and NH heads, K head-pos heads, sweeps, verified components or not. */
static void cells_of(size_t L, size_t HR, size_t NH, size_t K, unsigned sweeps, int verify,
                     size_t cells[MCH_CMAP_EST])
{
    size_t R = MCH_ROLE_COUNT;
    cells[0] = sweeps & MCH_SWEEP_HEADS ? HR * NH : 0;
    cells[1] = sweeps & MCH_SWEEP_BLOCKS ? 3 * L * R : 0;
    cells[2] = cells[3] = sweeps & MCH_SWEEP_HEAD_POS ? K * R : 0;
    cells[4] = cells[5] = verify ? cells[0] : 0;
    cells[6] = cells[7] = verify ? cells[1] : 0;
    cells[8] = sweeps & MCH_SWEEP_QKV ? 3 * L * NH : 0;
    cells[9] = sweeps & MCH_SWEEP_PATTERN ? L * NH : 0;
    cells[10] = sweeps & MCH_SWEEP_RESID_MID ? L * R : 0;
}

void mch_cmap_cells(const mch_job_spec *spec, size_t cells[MCH_CMAP_EST])
{
    cells_of(spec->layers, mch_spec_head_rows(spec), spec->heads, spec->n_head_pos,
             mch_sweeps_bits(spec->sweeps, spec->n_sweeps), spec->verify_top != 0, cells);
}

void mch_cmap_ests(mch_cmap *m, mch_est *out[MCH_CMAP_EST])
{
    mch_est *all[MCH_CMAP_EST] = {&m->heads,  &m->blocks,     &m->hpz,     &m->hpp,
                                  &m->vheads, &m->vheads_est, &m->vblocks, &m->vblocks_est,
                                  &m->qkv,    &m->pattern,    &m->rmid};
    memcpy(out, all, sizeof all);
}

void mch_cmap_deinit(mch_cmap *m)
{
    if (!m) return;
    mch_job_spec_deinit(&m->spec);
    mch_est *all[MCH_CMAP_EST];
    mch_cmap_ests(m, all);
    for (int i = 0; i < MCH_CMAP_EST; i++) mch_est_deinit(all[i]);
    mch_stats_deinit(&m->vrank);
    for (size_t i = 0; i < m->n_strata; i++) {
        free(m->strata[i].name);
        mch_est_deinit(&m->strata[i].heads);
        mch_est_deinit(&m->strata[i].blocks);
    }
    free(m->strata);
    free(m->pair_ids);
    mch_msg_strv_free(m->sites, m->n_sites);
    mch_msg_strv_free(m->provenance, m->n_provenance);
    memset(m, 0, sizeof *m);
}

/* The packed form of an estimate: its arrays are split into limbs in buf (4 * n uint64). */
typedef struct {
    Mechir__Estimates e;
    Mechir__Stats mor;
} est_pb;

/* The generated form of s, pointing into s. */
static Mechir__Stats *stats_to_pb(Mechir__Stats *p, const mch_stats *s)
{
    mechir__stats__init(p);
    p->n_n = p->n_mean = p->n_m2 = s->cells;
    p->n = s->n, p->mean = s->mean, p->m2 = s->m2;
    return p;
}

static Mechir__Estimates *est_to_pb(est_pb *p, const mch_est *e, uint64_t *limbs)
{
    mechir__estimates__init(&p->e);
    p->e.mean_of_ratios = stats_to_pb(&p->mor, &e->mor);
    p->e.replicates = e->B;
    size_t n = e->cells * ((size_t)e->B + 1);
    uint64_t *nh = limbs, *nl = limbs + n, *dh = limbs + 2 * n, *dl = limbs + 3 * n;
    for (size_t i = 0; i < n; i++) {
        nh[i] = (uint64_t)e->num[i].hi, nl[i] = e->num[i].lo;
        dh[i] = (uint64_t)e->den[i].hi, dl[i] = e->den[i].lo;
    }
    p->e.n_num_hi = p->e.n_num_lo = p->e.n_den_hi = p->e.n_den_lo = n;
    p->e.num_hi = (int64_t *)nh, p->e.num_lo = nl, p->e.den_hi = (int64_t *)dh, p->e.den_lo = dl;
    return &p->e;
}

static size_t est_limbs(const mch_est *e)
{
    return 4 * e->cells * ((size_t)e->B + 1);
}

mch_status mch_cmap_pack(const mch_cmap *m, uint8_t **out, size_t *len, mch_err *err)
{
    Mechir__CircuitMap c;
    Mechir__JobSpec spec;
    Mechir__Stats vrank;
    char *roles[MCH_ROLE_COUNT];
    mechir__circuit_map__init(&c);
    msg_spec_to_pb(&m->spec, &spec);
    c.format = (char *)MCH_CMAP_FORMAT;
    c.spec = &spec;
    c.pairs_total = m->pairs_total, c.pairs_used = m->pairs_used;
    c.pairs_skipped = m->pairs_skipped, c.pairs_failed = m->pairs_failed;
    c.pairs_with = m->pairs_with, c.pairs_against = m->pairs_against;
    for (int r = 0; r < MCH_ROLE_COUNT; r++) roles[r] = (char *)mch_role_name((mch_role)r);
    c.n_roles = MCH_ROLE_COUNT;
    c.roles = roles;
    size_t ns = m->n_strata, nlimbs = 0;
    mch_est *top[MCH_CMAP_EST];
    mch_cmap_ests((mch_cmap *)m, top);
    for (int i = 0; i < MCH_CMAP_EST; i++) nlimbs += est_limbs(top[i]);
    for (size_t i = 0; i < ns; i++)
        nlimbs += est_limbs(&m->strata[i].heads) + est_limbs(&m->strata[i].blocks);
    Mechir__Stratum *st = calloc(ns + 1, sizeof *st), **stp = calloc(ns + 1, sizeof *stp);
    est_pb *ests = calloc(2 * ns + MCH_CMAP_EST, sizeof *ests);
    uint64_t *limbs = malloc((nlimbs + 1) * sizeof *limbs), *l = limbs;
    mch_status rc =
        st && stp && ests && limbs ? MCH_OK : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc) {
        Mechir__Estimates **dst[MCH_CMAP_EST] = {&c.heads,
                                                 &c.blocks_by_role,
                                                 &c.head_pos_z_by_role,
                                                 &c.head_pos_pattern_by_role,
                                                 &c.heads_verified,
                                                 &c.heads_verified_estimate,
                                                 &c.blocks_by_role_verified,
                                                 &c.blocks_by_role_verified_estimate,
                                                 &c.qkv,
                                                 &c.pattern,
                                                 &c.resid_mid_by_role};
        for (int i = 0; i < MCH_CMAP_EST; i++, l += est_limbs(top[i - 1]))
            if (top[i]->cells || i < 4) *dst[i] = est_to_pb(&ests[i], top[i], l);
        if (m->vrank.cells) c.verified_rank = stats_to_pb(&vrank, &m->vrank);
    }
    for (size_t i = 0; !rc && i < ns; i++) {
        const mch_cmap_stratum *x = &m->strata[i];
        mechir__stratum__init(&st[i]);
        st[i].name = msg_s(x->name);
        st[i].pairs = x->pairs;
        st[i].heads = est_to_pb(&ests[MCH_CMAP_EST + 2 * i], &x->heads, l);
        l += est_limbs(&x->heads);
        st[i].blocks_by_role = est_to_pb(&ests[MCH_CMAP_EST + 1 + 2 * i], &x->blocks, l);
        l += est_limbs(&x->blocks);
        stp[i] = &st[i];
    }
    c.n_strata = ns;
    c.strata = stp;
    c.n_pair_ids = m->n_pair_ids;
    c.pair_ids = m->pair_ids;
    c.n_sites = m->n_sites;
    c.sites = m->sites;
    c.n_provenance = m->n_provenance;
    c.provenance = m->provenance;
    if (!rc) rc = msg_pack(&c.base, out, len, err);
    free(st);
    free(stp);
    free(ests);
    free(limbs);
    return rc;
}

/* Whether an exact sum of n pairs' values, each below 2^62 units in magnitude and weighted by at
 * most w (1 for replicate 0, 20 for a Poisson weight), is possible: |hi| <= w n / 4 (so folding
 * two maps cannot overflow), and nothing at all when n is 0. */
static int xsum_possible(int64_t hi, uint64_t lo, uint64_t n, uint64_t w)
{
    uint64_t mag = hi < 0 ? ~(uint64_t)hi : (uint64_t)hi; /* -hi - 1 for a negative hi */
    uint64_t lim = n > UINT64_MAX / w ? UINT64_MAX : w * n / 4;
    return n ? mag <= lim : hi == 0 && lo == 0;
}

/* A statistics message of cells cells whose counts are at most max_n. */
static int stats_ok(const Mechir__Stats *s, size_t cells, uint64_t max_n)
{
    if (!s) return cells == 0;
    if (s->n_n != cells || s->n_mean != cells || s->n_m2 != cells) return 0;
    for (size_t i = 0; i < cells; i++)
        if (s->n[i] > max_n || !isfinite(s->mean[i]) || !isfinite(s->m2[i]) || s->m2[i] < 0 ||
            (s->n[i] == 0 && (s->mean[i] != 0 || s->m2[i] != 0)))
            return 0;
    return 1;
}

/* An estimates message of cells cells, B replicates and counts at most max_n, whose exact sums
 * are possible for the counts. */
static int est_ok(const Mechir__Estimates *e, size_t cells, uint32_t B, uint64_t max_n)
{
    if (!e) return cells == 0;
    size_t R = (size_t)B + 1, n = cells * R;
    if (e->replicates != B || !stats_ok(e->mean_of_ratios, cells, max_n) || e->n_num_hi != n ||
        e->n_num_lo != n || e->n_den_hi != n || e->n_den_lo != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t pairs = e->mean_of_ratios->n[i / R], w = i % R ? 20 : 1;
        if (!xsum_possible(e->num_hi[i], e->num_lo[i], pairs, w) ||
            !xsum_possible(e->den_hi[i], e->den_lo[i], pairs, w))
            return 0;
    }
    return 1;
}

static int est_unknown(const Mechir__Estimates *e)
{
    return e && (e->base.n_unknown_fields ||
                 (e->mean_of_ratios && e->mean_of_ratios->base.n_unknown_fields));
}

static const char msg_oom[] = "out of memory";

/* The kind of a stratum name by its prefix, as mch_cmap_acc writes them: 0 "relevance=G", 1
 * "rank=A-B", 2 "direction=with|against"; -1 for another prefix or nothing after it. */
static int stratum_kind(const char *name)
{
    static const char *const prefix[3] = {"relevance=", "rank=", "direction="};
    for (int k = 0; k < 3; k++) {
        size_t n = strlen(prefix[k]);
        if (!strncmp(name, prefix[k], n)) return name[n] ? k : -1;
    }
    return -1;
}

/* The strata of a map with cells[0..1] heads and blocks cells: at most MCH_CMAP_MAX_STRATA,
 * unique names of a known kind, shapes, and pairs that add up to at most pairs_used per kind. The
 * first problem (msg_oom when out of memory), or NULL. */
static const char *strata_problem(const Mechir__CircuitMap *m, const size_t cells[MCH_CMAP_EST],
                                  uint32_t B, char *why, size_t len)
{
    static const char *const kinds[3] = {"relevance", "rank", "direction"};
    if (m->n_strata > MCH_CMAP_MAX_STRATA)
        return snprintf(why, len, "strata: %zu, more than %d", m->n_strata, MCH_CMAP_MAX_STRATA),
               why;
    mch_strmap *names = mch_strmap_create();
    uint64_t sum[3] = {0, 0, 0};
    const char *bad = names ? NULL : msg_oom;
    for (size_t i = 0; !bad && i < m->n_strata; i++) {
        const Mechir__Stratum *st = m->strata[i];
        int kind = stratum_kind(st->name), added = 0;
        if (kind < 0) {
            snprintf(why, len, "strata[%zu]: unknown name '%.40s'", i, st->name);
            bad = why;
        } else if (!mch_strmap_put(names, st->name, strlen(st->name), &added)) {
            bad = msg_oom;
        } else if (!added) {
            snprintf(why, len, "strata[%zu]: '%s' appears twice", i, st->name);
            bad = why;
        } else if (st->pairs > m->pairs_used || !est_ok(st->heads, cells[0], B, st->pairs) ||
                   !est_ok(st->blocks_by_role, cells[1], B, st->pairs)) {
            snprintf(why, len, "strata[%zu] (%s): wrong shape or values", i, st->name);
            bad = why;
        } else if (mch_u64_add(&sum[kind], st->pairs) || sum[kind] > m->pairs_used) {
            snprintf(why, len, "strata: the %s strata hold more pairs than pairs_used (%llu)",
                     kinds[kind], (unsigned long long)m->pairs_used);
            bad = why;
        }
    }
    mch_strmap_free(names);
    return bad;
}

/* used + skipped + failed = total and with + against <= used + skipped, none wrapping. */
static const char *counts_problem(const Mechir__CircuitMap *m, char *why, size_t len)
{
    uint64_t scored = m->pairs_used, all, moved = m->pairs_with;
    int wraps = mch_u64_add(&scored, m->pairs_skipped);
    all = scored;
    if (wraps || mch_u64_add(&all, m->pairs_failed) || all != m->pairs_total)
        return snprintf(why, len,
                        "pair counts: used %llu + skipped %llu + failed %llu != total %llu",
                        (unsigned long long)m->pairs_used, (unsigned long long)m->pairs_skipped,
                        (unsigned long long)m->pairs_failed, (unsigned long long)m->pairs_total),
               why;
    if (mch_u64_add(&moved, m->pairs_against) || moved > scored)
        return snprintf(why, len,
                        "pair counts: with %llu + against %llu the axiom > used + skipped %llu",
                        (unsigned long long)m->pairs_with, (unsigned long long)m->pairs_against,
                        (unsigned long long)scored),
               why;
    if (m->n_pair_ids != m->pairs_total)
        return snprintf(why, len, "pair_ids: %zu ids for %llu pairs", m->n_pair_ids,
                        (unsigned long long)m->pairs_total),
               why;
    return NULL;
}

/* The first problem of a decoded map (msg_oom when out of memory), or NULL. why holds messages
 * with numbers. */
static const char *map_problem(const Mechir__CircuitMap *m, char *why, size_t len)
{
    const Mechir__JobSpec *s = m->spec;
    size_t L = s ? s->layers : 0, NH = s ? s->heads : 0, R = m->n_roles;
    size_t HR = s ? (size_t)s->layers + 2 * (size_t)s->decoder_layers : 0;
    size_t K = s ? s->n_head_list / 2 : 0;
    uint32_t B = s ? s->bootstrap : 0;
    int unknown = m->base.n_unknown_fields || (s && s->base.n_unknown_fields);
    const Mechir__Estimates *all[MCH_CMAP_EST] = {m->heads,
                                                  m->blocks_by_role,
                                                  m->head_pos_z_by_role,
                                                  m->head_pos_pattern_by_role,
                                                  m->heads_verified,
                                                  m->heads_verified_estimate,
                                                  m->blocks_by_role_verified,
                                                  m->blocks_by_role_verified_estimate,
                                                  m->qkv,
                                                  m->pattern,
                                                  m->resid_mid_by_role};
    size_t cells[MCH_CMAP_EST];
    cells_of(L, HR, NH, K, s ? mch_sweeps_bits(s->sweeps, s->n_sweeps) : 0, s && s->verify_top,
             cells);
    static const char *const names[MCH_CMAP_EST] = {"heads",
                                                    "blocks_by_role",
                                                    "head_pos_z_by_role",
                                                    "head_pos_pattern_by_role",
                                                    "heads_verified",
                                                    "heads_verified_estimate",
                                                    "blocks_by_role_verified",
                                                    "blocks_by_role_verified_estimate",
                                                    "qkv",
                                                    "pattern",
                                                    "resid_mid_by_role"};
    for (int i = 0; i < MCH_CMAP_EST; i++) unknown |= est_unknown(all[i]);
    unknown |= m->verified_rank && m->verified_rank->base.n_unknown_fields;
    for (size_t i = 0; i < m->n_strata; i++) {
        const Mechir__Stratum *st = m->strata[i];
        unknown |=
            st->base.n_unknown_fields || est_unknown(st->heads) || est_unknown(st->blocks_by_role);
    }
    if (!m->format || strcmp(m->format, MCH_CMAP_FORMAT))
        return "format is not " MCH_CMAP_FORMAT " (a map of another mechir version)";
    if (unknown) return "fields this version does not know (a newer mechir, or damage)";
    if (!s) return "no job spec";
    if (msg_spec_check(s, why, len) || msg_utf8_check(&m->base, "", why, len)) return why;
    if (R != MCH_ROLE_COUNT) return "roles: unexpected number of roles";
    const char *bad = counts_problem(m, why, len);
    if (bad) return bad;
    for (int i = 0; i < MCH_CMAP_EST; i++)
        if (!est_ok(all[i], cells[i], B, m->pairs_used)) {
            snprintf(why, len, "%s: wrong shape or values", names[i]);
            return why;
        }
    /* A cell's verified estimates are of the pairs of its exact ones. */
    for (int i = 4; i < 8; i += 2)
        for (size_t c = 0; c < cells[i]; c++)
            if (all[i]->mean_of_ratios->n[c] != all[i + 1]->mean_of_ratios->n[c]) {
                snprintf(why, len, "%s: cell %zu has %llu pairs, its estimates %llu", names[i], c,
                         (unsigned long long)all[i]->mean_of_ratios->n[c],
                         (unsigned long long)all[i + 1]->mean_of_ratios->n[c]);
                return why;
            }
    const Mechir__Stats *vr = m->verified_rank;
    if (!stats_ok(vr, s->verify_top ? 1 : 0, m->pairs_used) ||
        (vr && vr->n_n && fabs(vr->mean[0]) > 1))
        return "verified_rank: wrong shape or values";
    for (size_t i = 0; i < m->n_roles; i++)
        if (!m->roles[i] || strcmp(m->roles[i], mch_role_name((mch_role)i)))
            return "roles: unknown role";
    for (size_t i = 1; i < m->n_pair_ids; i++)
        if (m->pair_ids[i] <= m->pair_ids[i - 1]) return "pair_ids: not sorted and unique";
    return strata_problem(m, cells, B, why, len);
}

/* Copies validated estimates (absent: zero cells). */
static mch_status est_from_pb(mch_est *e, const Mechir__Estimates *m, mch_err *err)
{
    const Mechir__Stats *s = m ? m->mean_of_ratios : NULL;
    size_t cells = s ? s->n_n : 0;
    mch_status rc = mch_est_init(e, cells, m ? m->replicates : 0, err);
    if (rc || !cells) return rc;
    memcpy(e->mor.n, s->n, cells * sizeof *s->n);
    memcpy(e->mor.mean, s->mean, cells * sizeof *s->mean);
    memcpy(e->mor.m2, s->m2, cells * sizeof *s->m2);
    for (size_t i = 0; i < m->n_num_hi; i++) {
        e->num[i] = (mch_xsum){m->num_hi[i], m->num_lo[i]};
        e->den[i] = (mch_xsum){m->den_hi[i], m->den_lo[i]};
    }
    return MCH_OK;
}

static mch_status strv_from_pb(char ***dst, size_t *n, char *const *src, size_t count, mch_err *err)
{
    if (!(*dst = calloc(count + 1, sizeof **dst)))
        return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < count; i++, (*n)++)
        if (!mch_msg_str(&(*dst)[i], src[i])) return mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    return MCH_OK;
}

/* Copies a validated map into out (zeroed). */
static mch_status map_from_pb(mch_cmap *out, const Mechir__CircuitMap *m, mch_err *err)
{
    mch_status rc = msg_spec_from_pb(&out->spec, m->spec, err);
    out->pairs_total = m->pairs_total, out->pairs_used = m->pairs_used;
    out->pairs_skipped = m->pairs_skipped, out->pairs_failed = m->pairs_failed;
    out->pairs_with = m->pairs_with, out->pairs_against = m->pairs_against;
    if (!rc) rc = est_from_pb(&out->heads, m->heads, err);
    if (!rc) rc = est_from_pb(&out->blocks, m->blocks_by_role, err);
    if (!rc) rc = est_from_pb(&out->hpz, m->head_pos_z_by_role, err);
    if (!rc) rc = est_from_pb(&out->hpp, m->head_pos_pattern_by_role, err);
    if (!rc) rc = est_from_pb(&out->vheads, m->heads_verified, err);
    if (!rc) rc = est_from_pb(&out->vheads_est, m->heads_verified_estimate, err);
    if (!rc) rc = est_from_pb(&out->vblocks, m->blocks_by_role_verified, err);
    if (!rc) rc = est_from_pb(&out->vblocks_est, m->blocks_by_role_verified_estimate, err);
    if (!rc) rc = est_from_pb(&out->qkv, m->qkv, err);
    if (!rc) rc = est_from_pb(&out->pattern, m->pattern, err);
    if (!rc) rc = est_from_pb(&out->rmid, m->resid_mid_by_role, err);
    const Mechir__Stats *vr = m->verified_rank;
    if (!rc && vr && (rc = mch_stats_init(&out->vrank, vr->n_n, err)) == MCH_OK && vr->n_n) {
        memcpy(out->vrank.n, vr->n, vr->n_n * sizeof *vr->n);
        memcpy(out->vrank.mean, vr->mean, vr->n_n * sizeof *vr->mean);
        memcpy(out->vrank.m2, vr->m2, vr->n_n * sizeof *vr->m2);
    }
    if (!rc && !(out->strata = calloc(m->n_strata + 1, sizeof *out->strata)))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < m->n_strata; i++, out->n_strata++) {
        mch_cmap_stratum *st = &out->strata[i];
        st->pairs = m->strata[i]->pairs;
        if (!mch_msg_str(&st->name, m->strata[i]->name))
            rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        if (!rc) rc = est_from_pb(&st->heads, m->strata[i]->heads, err);
        if (!rc) rc = est_from_pb(&st->blocks, m->strata[i]->blocks_by_role, err);
    }
    if (!rc && !(out->pair_ids = malloc((m->n_pair_ids + 1) * sizeof *out->pair_ids)))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc && m->n_pair_ids)
        memcpy(out->pair_ids, m->pair_ids, m->n_pair_ids * sizeof *out->pair_ids);
    if (!rc) out->n_pair_ids = m->n_pair_ids;
    if (!rc) rc = strv_from_pb(&out->sites, &out->n_sites, m->sites, m->n_sites, err);
    if (!rc)
        rc =
            strv_from_pb(&out->provenance, &out->n_provenance, m->provenance, m->n_provenance, err);
    return rc;
}

mch_status mch_cmap_unpack(mch_cmap *out, const uint8_t *buf, size_t len, const char *name,
                           mch_err *err)
{
    memset(out, 0, sizeof *out);
    if (len > MCH_CMAP_MAX_BYTES)
        return mch_fail(err, MCH_ERR_FORMAT, "%s: %zu bytes is larger than any circuit map", name,
                        len);
    Mechir__CircuitMap *m = mechir__circuit_map__unpack(NULL, len, buf);
    if (!m)
        return mch_fail(err, MCH_ERR_PROTO, "%s: not a circuit map (protobuf decoding failed)",
                        name);
    char why[256];
    const char *bad = map_problem(m, why, sizeof why);
    mch_status rc = bad == msg_oom ? mch_fail(err, MCH_ERR_NOMEM, "%s: out of memory", name)
                    : bad ? mch_fail(err, MCH_ERR_FORMAT, "%s: invalid circuit map: %s", name, bad)
                          : map_from_pb(out, m, err);
    mechir__circuit_map__free_unpacked(m, NULL);
    if (rc) mch_cmap_deinit(out);
    return rc;
}
