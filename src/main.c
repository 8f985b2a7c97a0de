/*
 * main.c — the rkbridge command line: run, validate, dev-broker, --help, --version.
 */
#include "kafka/devbroker.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--version")) {
        printf("rkbridge %s\n", RKB_VERSION);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "dev-broker"))
        return rkb_devbroker_main(argc - 1, argv + 1);
    fprintf(stderr, "usage: rkbridge run|validate|dev-broker ...\n");
    return 2;
}
