/* Ranks 1..N-1 of an MPI run: receive the job from rank 0, then ask for work units, run them
 * with the worker and send the results, until told to stop. The only file of worker/ that calls
 * MPI (the protocol is in msg.h). */
#ifndef MCH_RANK_H
#define MCH_RANK_H

/* Runs this worker rank (MPI is initialised); @return its exit status: 0, or 1 when the worker
 * could not start or a unit failed (the coordinator was told, with the rank and host). */
int mch_rank_run(int rank);

#endif
