/* A worker rank's loop (see rank.h). Units are unpacked (and validated) by the message layer;
 * each result echoes only its pairs' index and id, since the coordinator has the rest. */
#include "rank.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "worker.h"

/* A worker's failure, to the coordinator: "on HOST: MESSAGE" (never cut). */
static void send_error(int rank, const char *host, const char *message)
{
    size_t len = strlen(host) + strlen(message) + 8;
    char *text = malloc(len);
    if (text) snprintf(text, len, "on %s: %s", host, message);
    mch_error_msg e = {(uint32_t)rank, 0, text ? text : (char *)"out of memory"};
    uint8_t *b = NULL;
    size_t n = 0;
    if (mch_error_msg_pack(&e, &b, &n, NULL)) n = 0;
    MPI_Send(b, (int)n, MPI_BYTE, 0, MCH_TAG_ERROR, MPI_COMM_WORLD);
    free(b);
    free(text);
}

/* The job from rank 0: the header ints, the spec and the output directory. 0, or 1 when the
 * coordinator failed before the job started (nothing else is sent then). */
static int receive_job(int hdr[MCH_JOB_HDR_INTS], uint8_t **spec, char **out_dir)
{
    MPI_Bcast(hdr, MCH_JOB_HDR_INTS, MPI_INT, 0, MPI_COMM_WORLD);
    if (hdr[MCH_JOB_HDR_SPEC_BYTES] < 0) return 1;
    *spec = malloc((size_t)hdr[MCH_JOB_HDR_SPEC_BYTES] + 1);
    *out_dir = malloc((size_t)hdr[MCH_JOB_HDR_OUT_BYTES] + 1);
    if (!*spec || !*out_dir) MPI_Abort(MPI_COMM_WORLD, 1); /* a collective cannot be skipped */
    MPI_Bcast(*spec, hdr[MCH_JOB_HDR_SPEC_BYTES], MPI_BYTE, 0, MPI_COMM_WORLD);
    MPI_Bcast(*out_dir, hdr[MCH_JOB_HDR_OUT_BYTES], MPI_BYTE, 0, MPI_COMM_WORLD);
    (*out_dir)[hdr[MCH_JOB_HDR_OUT_BYTES]] = 0;
    return 0;
}

/* Receives the next message from rank 0 into *buf (grown as needed); @return its tag, or -1. */
static int receive(uint8_t **buf, size_t *cap, int *count)
{
    MPI_Status st;
    MPI_Probe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
    MPI_Get_count(&st, MPI_BYTE, count);
    if (*count < 0) return -1;
    if ((size_t)*count > *cap) {
        uint8_t *nb = realloc(*buf, (size_t)*count);
        if (!nb) return -1;
        *buf = nb;
        *cap = (size_t)*count;
    }
    MPI_Recv(*buf, *count, MPI_BYTE, 0, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    return st.MPI_TAG;
}

/* Runs one packed unit and sends the result (or the error); @return 0, or 1 after an error. */
static int one_unit(mch_worker *w, int rank, const char *host, const uint8_t *buf, size_t len)
{
    mch_work_unit u;
    mch_unit_result res = {0};
    mch_err e = {0};
    uint8_t *out = NULL;
    size_t n = 0;
    mch_status rc = mch_work_unit_unpack(&u, buf, len, &e);
    if (!rc) rc = mch_worker_run_unit(w, &u, &res, &e);
    if (!rc) rc = mch_unit_result_pack(&res, &out, &n, &e);
    if (!rc && n > MCH_MSG_MAX_BYTES)
        rc = mch_fail(&e, MCH_ERR_SHAPE,
                      "the result of unit %llu takes %zu bytes, more than a message may (%zu); "
                      "use a smaller --unit-size",
                      (unsigned long long)u.unit_id, n, MCH_MSG_MAX_BYTES);
    if (rc)
        send_error(rank, host, e.msg);
    else
        MPI_Send(out, (int)n, MPI_BYTE, 0, MCH_TAG_RESULT, MPI_COMM_WORLD);
    free(out);
    mch_unit_result_deinit(&res);
    mch_work_unit_deinit(&u);
    return rc != MCH_OK;
}

int mch_rank_run(int rank)
{
    int hdr[MCH_JOB_HDR_INTS];
    uint8_t *spec_buf = NULL, *buf = NULL;
    char *out_dir = NULL;
    if (receive_job(hdr, &spec_buf, &out_dir)) return 1;
    char host[MPI_MAX_PROCESSOR_NAME] = "?";
    int hl;
    MPI_Get_processor_name(host, &hl);
    MPI_Gather(host, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, NULL, 0, MPI_CHAR, 0, MPI_COMM_WORLD);
    mch_err err = {0};
    mch_job_spec spec = {0};
    mch_worker *w = NULL;
    mch_status rc = mch_job_spec_unpack(&spec, spec_buf, (size_t)hdr[MCH_JOB_HDR_SPEC_BYTES],
                                        "the job spec", &err);
    if (!rc) {
        int threads = hdr[MCH_JOB_HDR_THREADS] ? hdr[MCH_JOB_HDR_THREADS] : 1;
        rc = mch_worker_create(&w, &spec, out_dir, rank, hdr[MCH_JOB_HDR_ATTEMPT], threads,
                               hdr[MCH_JOB_HDR_SCRATCH_MB], &err);
    }
    int status = 0;
    if (rc) { /* tell the coordinator, then wait for the stop */
        send_error(rank, host, err.msg);
        status = 1;
    } else {
        MPI_Send(NULL, 0, MPI_BYTE, 0, MCH_TAG_READY, MPI_COMM_WORLD);
    }
    size_t cap = 0;
    for (;;) {
        int count = 0, tag = receive(&buf, &cap, &count);
        if (tag < 0 || tag == MCH_TAG_STOP) break;
        if (tag == MCH_TAG_UNIT && w) status |= one_unit(w, rank, host, buf, (size_t)count);
    }
    free(buf);
    mch_worker_free(w);
    mch_job_spec_deinit(&spec);
    free(spec_buf);
    free(out_dir);
    return status;
}
