/*
 * cli.h — the subcommands behind `rkbridge` (main.c dispatches to them).
 * Each takes argv with argv[0] = the subcommand name and returns the process exit code:
 * 0 success, 1 runtime failure (a task FAILED), 2 bad usage or an invalid config.
 */
#ifndef RKB_CLI_CLI_H
#define RKB_CLI_CLI_H

#include <stdio.h>

int rkb_cli_run(int argc, char **argv);
int rkb_cli_validate(int argc, char **argv);
void rkb_cli_usage(FILE *fp);

#endif
