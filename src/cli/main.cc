#include "cli/cli.h"

int main(int argc, char** argv) { return mailshard::cli::run_main(argc, argv); }
