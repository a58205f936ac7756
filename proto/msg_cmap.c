/* Welford statistics with Chan's parallel combination beside them, and the circuit map: packed
 * in the canonical form it is given, unpacked with every count and shape validated (a .cmap from
 * another site is untrusted). */
#include "msg_pb.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perturb.h"

/* ---- statistics --------------------------------------------------------------------------- */

mch_status mch_stats_init(mch_stats *s, size_t cells, mch_err *err)
{
    s->cells = cells;
    s->n = calloc(cells + 1, sizeof *s->n);
    s->mean = calloc(cells + 1, sizeof *s->mean);
    s->m2 = calloc(cells + 1, sizeof *s->m2);
    if (s->n && s->mean && s->m2) return MCH_OK;
    mch_stats_deinit(s);
    return mch_fail(err, MCH_ERR_NOMEM, "out of memory for %zu statistics cells", cells);
}

void mch_stats_deinit(mch_stats *s)
{
    if (!s) return;
    free(s->n);
    free(s->mean);
    free(s->m2);
    memset(s, 0, sizeof *s);
}

void mch_stats_add(mch_stats *s, size_t i, double x)
{
    s->n[i]++;
    double d = x - s->mean[i];
    s->mean[i] += d / (double)s->n[i];
    s->m2[i] += d * (x - s->mean[i]);
}

void mch_stats_fold(mch_stats *a, const mch_stats *b)
{
    for (size_t i = 0; i < a->cells; i++) {
        uint64_t nb = b->n[i];
        if (!nb) continue;
        if (!a->n[i]) {
            a->n[i] = nb, a->mean[i] = b->mean[i], a->m2[i] = b->m2[i];
            continue;
        }
        double na = (double)a->n[i], dn = (double)nb, tot = na + dn, d = b->mean[i] - a->mean[i];
        a->mean[i] += d * dn / tot;
        a->m2[i] += b->m2[i] + d * d * na * dn / tot;
        a->n[i] += nb;
    }
}

double mch_stats_std(const mch_stats *s, size_t i)
{
    return s->n[i] >= 2 ? sqrt(s->m2[i] / (double)(s->n[i] - 1)) : NAN;
}

/* ---- circuit maps ------------------------------------------------------------------------- */

void mch_cmap_deinit(mch_cmap *m)
{
    if (!m) return;
    mch_job_spec_deinit(&m->spec);
    mch_stats *all[] = {&m->heads, &m->blocks, &m->hpz, &m->hpp};
    for (int i = 0; i < 4; i++) mch_stats_deinit(all[i]);
    for (size_t i = 0; i < m->n_strata; i++) {
        free(m->strata[i].name);
        mch_stats_deinit(&m->strata[i].heads);
        mch_stats_deinit(&m->strata[i].blocks);
    }
    free(m->strata);
    free(m->pair_ids);
    mch_msg_strv_free(m->sites, m->n_sites);
    memset(m, 0, sizeof *m);
}

static Mechir__Stats *stats_to_pb(Mechir__Stats *m, const mch_stats *s)
{
    mechir__stats__init(m);
    m->n_n = m->n_mean = m->n_m2 = s->cells;
    m->n = s->n;
    m->mean = s->mean;
    m->m2 = s->m2;
    return m;
}

mch_status mch_cmap_pack(const mch_cmap *m, uint8_t **out, size_t *len, mch_err *err)
{
    Mechir__CircuitMap c;
    Mechir__JobSpec spec;
    Mechir__Stats stats[4];
    char *roles[MCH_ROLE_COUNT];
    mechir__circuit_map__init(&c);
    msg_spec_to_pb(&m->spec, &spec);
    c.format = (char *)MCH_CMAP_FORMAT;
    c.spec = &spec;
    c.pairs_total = m->pairs_total, c.pairs_used = m->pairs_used;
    c.pairs_skipped = m->pairs_skipped, c.pairs_failed = m->pairs_failed;
    for (int r = 0; r < MCH_ROLE_COUNT; r++) roles[r] = (char *)mch_role_name((mch_role)r);
    c.n_roles = MCH_ROLE_COUNT;
    c.roles = roles;
    c.heads = stats_to_pb(&stats[0], &m->heads);
    c.blocks_by_role = stats_to_pb(&stats[1], &m->blocks);
    c.head_pos_z_by_role = stats_to_pb(&stats[2], &m->hpz);
    c.head_pos_pattern_by_role = stats_to_pb(&stats[3], &m->hpp);
    size_t ns = m->n_strata;
    Mechir__Stratum *st = calloc(ns + 1, sizeof *st), **stp = calloc(ns + 1, sizeof *stp);
    Mechir__Stats *sts = calloc(2 * ns + 1, sizeof *sts);
    mch_status rc = st && stp && sts ? MCH_OK : mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < ns; i++) {
        mechir__stratum__init(&st[i]);
        st[i].name = msg_s(m->strata[i].name);
        st[i].pairs = m->strata[i].pairs;
        st[i].heads = stats_to_pb(&sts[2 * i], &m->strata[i].heads);
        st[i].blocks_by_role = stats_to_pb(&sts[2 * i + 1], &m->strata[i].blocks);
        stp[i] = &st[i];
    }
    c.n_strata = ns;
    c.strata = stp;
    c.n_pair_ids = m->n_pair_ids;
    c.pair_ids = m->pair_ids;
    c.n_sites = m->n_sites;
    c.sites = m->sites;
    if (!rc) rc = msg_pack(&c.base, out, len, err);
    free(st);
    free(stp);
    free(sts);
    return rc;
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

/* The first problem of a decoded map, or NULL. why holds messages with numbers. */
static const char *map_problem(const Mechir__CircuitMap *m, char *why, size_t len)
{
    const Mechir__JobSpec *s = m->spec;
    size_t L = s ? s->layers : 0, NH = s ? s->heads : 0, R = m->n_roles;
    size_t K = s ? s->n_head_list / 2 : 0;
    int unknown = m->base.n_unknown_fields || (s && s->base.n_unknown_fields);
    const Mechir__Stats *all[4] = {m->heads, m->blocks_by_role, m->head_pos_z_by_role,
                                   m->head_pos_pattern_by_role};
    for (int i = 0; i < 4; i++) unknown |= all[i] && all[i]->base.n_unknown_fields;
    for (size_t i = 0; i < m->n_strata; i++) {
        const Mechir__Stratum *st = m->strata[i];
        unknown |= st->base.n_unknown_fields || (st->heads && st->heads->base.n_unknown_fields) ||
                   (st->blocks_by_role && st->blocks_by_role->base.n_unknown_fields);
    }
    if (!m->format || strcmp(m->format, MCH_CMAP_FORMAT)) return "format is not mechir-circuit/1";
    if (unknown) return "fields this version does not know (a newer mechir, or damage)";
    if (!s) return "no job spec";
    if (msg_spec_check(s, why, len)) return why;
    if (R != MCH_ROLE_COUNT) return "roles: unexpected number of roles";
    if (m->pairs_used + m->pairs_skipped + m->pairs_failed != m->pairs_total)
        return "pair counts: used + skipped + failed != total";
    if (m->n_pair_ids != m->pairs_total) return "pair_ids: count differs from pairs_total";
    if (!stats_ok(m->heads, L * NH, m->pairs_used)) return "heads: wrong shape or values";
    if (!stats_ok(m->blocks_by_role, 3 * L * R, m->pairs_used))
        return "blocks_by_role: wrong shape or values";
    if (!stats_ok(m->head_pos_z_by_role, K * R, m->pairs_used))
        return "head_pos_z_by_role: wrong shape or values";
    if (!stats_ok(m->head_pos_pattern_by_role, K * R, m->pairs_used))
        return "head_pos_pattern_by_role: wrong shape or values";
    for (size_t i = 0; i < m->n_roles; i++)
        if (!m->roles[i] || strcmp(m->roles[i], mch_role_name((mch_role)i)))
            return "roles: unknown role";
    for (size_t i = 1; i < m->n_pair_ids; i++)
        if (m->pair_ids[i] <= m->pair_ids[i - 1]) return "pair_ids: not sorted and unique";
    for (size_t i = 0; i < m->n_strata; i++) {
        const Mechir__Stratum *st = m->strata[i];
        if (!st->name || !stats_ok(st->heads, L * NH, st->pairs) ||
            !stats_ok(st->blocks_by_role, 3 * L * R, st->pairs) || st->pairs > m->pairs_used)
            return "strata: wrong shape or values";
    }
    return NULL;
}

/* Copies validated statistics (absent: zero cells). */
static mch_status stats_from_pb(mch_stats *s, const Mechir__Stats *m, mch_err *err)
{
    size_t cells = m ? m->n_n : 0;
    mch_status rc = mch_stats_init(s, cells, err);
    if (rc || !cells) return rc;
    memcpy(s->n, m->n, cells * sizeof *s->n);
    memcpy(s->mean, m->mean, cells * sizeof *s->mean);
    memcpy(s->m2, m->m2, cells * sizeof *s->m2);
    return MCH_OK;
}

/* Copies a validated map into out (zeroed). */
static mch_status map_from_pb(mch_cmap *out, const Mechir__CircuitMap *m, mch_err *err)
{
    mch_status rc = msg_spec_from_pb(&out->spec, m->spec, err);
    out->pairs_total = m->pairs_total, out->pairs_used = m->pairs_used;
    out->pairs_skipped = m->pairs_skipped, out->pairs_failed = m->pairs_failed;
    if (!rc) rc = stats_from_pb(&out->heads, m->heads, err);
    if (!rc) rc = stats_from_pb(&out->blocks, m->blocks_by_role, err);
    if (!rc) rc = stats_from_pb(&out->hpz, m->head_pos_z_by_role, err);
    if (!rc) rc = stats_from_pb(&out->hpp, m->head_pos_pattern_by_role, err);
    if (!rc && !(out->strata = calloc(m->n_strata + 1, sizeof *out->strata)))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < m->n_strata; i++, out->n_strata++) {
        mch_cmap_stratum *st = &out->strata[i];
        st->pairs = m->strata[i]->pairs;
        if (!mch_msg_str(&st->name, m->strata[i]->name))
            rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
        if (!rc) rc = stats_from_pb(&st->heads, m->strata[i]->heads, err);
        if (!rc) rc = stats_from_pb(&st->blocks, m->strata[i]->blocks_by_role, err);
    }
    if (!rc && !(out->pair_ids = malloc((m->n_pair_ids + 1) * sizeof *out->pair_ids)))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    if (!rc && m->n_pair_ids)
        memcpy(out->pair_ids, m->pair_ids, m->n_pair_ids * sizeof *out->pair_ids);
    if (!rc) out->n_pair_ids = m->n_pair_ids;
    if (!rc && !(out->sites = calloc(m->n_sites + 1, sizeof *out->sites)))
        rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < m->n_sites; i++, out->n_sites++)
        if (!mch_msg_str(&out->sites[i], m->sites[i]))
            rc = mch_fail(err, MCH_ERR_NOMEM, "out of memory");
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
    char why[160];
    const char *bad = map_problem(m, why, sizeof why);
    mch_status rc = bad ? mch_fail(err, MCH_ERR_FORMAT, "%s: invalid circuit map: %s", name, bad)
                        : map_from_pb(out, m, err);
    mechir__circuit_map__free_unpacked(m, NULL);
    if (rc) mch_cmap_deinit(out);
    return rc;
}
