/*
 * main.c — the rkbridge command line: run, validate, dev-broker, config-doc, cache-script, --help,
 * --version.
 */
#include "cli/cli.h"
#include "config/config.h"
#include "kafka/devbroker.h"
#include "process/cache.h"
#include "util/log.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    rkb_log_init_from_env();
    if (argc < 2) {
        rkb_cli_usage(stderr);
        return 2;
    }
    const char *command = argv[1];
    if (!strcmp(command, "--version") || !strcmp(command, "version")) {
        printf("rkbridge %s\n", RKB_VERSION);
        return 0;
    }
    if (!strcmp(command, "--help") || !strcmp(command, "-h") || !strcmp(command, "help")) {
        rkb_cli_usage(stdout);
        rkb_config_print_help(stdout);
        return 0;
    }
    if (!strcmp(command, "run"))
        return rkb_cli_run(argc - 1, argv + 1);
    if (!strcmp(command, "validate"))
        return rkb_cli_validate(argc - 1, argv + 1);
    if (!strcmp(command, "dev-broker"))
        return rkb_devbroker_main(argc - 1, argv + 1);
    if (!strcmp(command, "config-doc")) {
        rkb_config_print_markdown(stdout);
        return 0;
    }
    if (!strcmp(command, "cache-script")) {
        fputs(rkb_cache_script(NULL), stdout);
        return 0;
    }
    fprintf(stderr, "rkbridge: unknown command '%s'\n\n", command);
    rkb_cli_usage(stderr);
    return 2;
}
