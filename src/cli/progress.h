/* The setup progress display of `run` and `create --start` (issue 6).
 *
 * StartContainer is answered only once a container's setup steps are done,
 * so the start goes to a thread of its own while another follows the
 * container's setup output (StreamLogs, LOG_STREAM_SETUP) and this thread
 * draws, on stderr:
 *   - on a terminal, a status line redrawn in place four times a second:
 *       [1/2 3.2s] apt: curl | Unpacking curl (7.88.1-10) ...
 *     (step, elapsed time, the spec, the step's last output line, cut to
 *     the terminal's width), and a line per finished step;
 *   - elsewhere, one plain line as each step starts and ends:
 *       setup: step 1/2: apt: curl
 *       setup: step 1/2 done in 3.4 s
 *   - at the end, "setup: done in 5.1 s (layer cached)", or
 *     "setup: reused cached layer 1a2b3c4d5e6f" when nothing ran, or for a
 *     failed step the step, its exit code and its last output lines.
 * The raw setup output stays in the container's log (`quilt-cli logs`).
 * Callers use it only without --json: JSON output stays what it was.
 *
 * Each thread has its own connection (the client makes one call at a
 * time). The daemon marks the end of the setup output ("quilt-setup: done",
 * "quilt-setup: step I/N failed: ...", "quilt-setup: reused layer KEY"), so
 * the follower ends by itself; one that has not ended 2 s after the start
 * was answered is left behind, silent, and dies with the process. */
#ifndef QUILT_CLI_PROGRESS_H
#define QUILT_CLI_PROGRESS_H

#include "cli/cli.h"

/* Starts the created container `id`, which has setup steps, showing their
 * progress on stderr. Like a StartContainer call: 0 with *resp (a
 * StartContainerResponse to free), or a negative errno with err filled
 * (not printed). No deadline unless --timeout: setup may take long. */
int setup_progress_start(struct cli_ctx *ctx, const char *id, ProtobufCMessage **resp,
                         struct qerr *err);

#endif
