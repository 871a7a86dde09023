/* pki_cmd.h - the `popsync pki` subcommand.
 *
 * Owns: command-line parsing for `pki init-ca`, `pki issue`, `pki revoke` and
 * `pki crl`; the work is done by ps_pki_init_ca, ps_pki_issue, ps_pki_revoke
 * and ps_pki_crl (common/tls_pki.c).
 */
#ifndef PS_PKI_CMD_H
#define PS_PKI_CMD_H

/**
 * Runs `popsync pki ...`; argv[0] is "pki", argv[1] the subcommand.  Returns
 * the process exit status: 0 on success, 1 on failure, 2 on a usage error.
 */
int ps_cli_pki(int argc, char **argv);

#endif
