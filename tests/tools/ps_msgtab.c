/* ps_msgtab.c - prints the message table (common/msgtab.def) as the
 * markdown table of docs/protocol.md §5.
 *
 * usage: ps_msgtab              the markdown table
 *        ps_msgtab --types c2s  the client -> server type numbers, one a line
 *        ps_msgtab --types s2c  the server -> client type numbers
 *
 * tests/tools/check_msgtab_doc.sh compares its output with the table in
 * docs/protocol.md (ctest docs.msgtab) and, with --update, writes it there;
 * t_bad_frames.sh sends every server -> client type to the server.
 */
#include "msgtab.h"

#include <protobuf-c/protobuf-c.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    size_t n;
    const ps_msg_info_t *t = ps_msg_table(&n);

    if (argc == 3 && !strcmp(argv[1], "--types") && (!strcmp(argv[2], "c2s") || !strcmp(argv[2], "s2c"))) {
        ps_msg_dir_t want = !strcmp(argv[2], "c2s") ? PS_MSG_DIR_C2S : PS_MSG_DIR_S2C;
        for (size_t i = 0; i < n; i++)
            if (t[i].dir == want)
                printf("%u\n", t[i].type);
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: ps_msgtab [--types c2s|s2c]\n");
        return 2;
    }

    printf("| type | name | direction | body message | reply | roles that may send it | Hello first | runs on |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < n; i++) {
        const ps_msg_info_t *r = &t[i];
        printf("| %u | %s | %s | `%s` | ", r->type, r->name, ps_msg_dir_text(r->dir), r->desc->short_name);
        if (r->dir == PS_MSG_DIR_C2S) {
            char roles[64];
            ps_msg_roles_text(r->type, roles, sizeof(roles));
            printf("%s (%u) | %s | %s | %s |\n", ps_frame_type_name(r->reply), r->reply, roles,
                   r->needs_hello ? "yes" : "no", ps_msg_run_text(r->run));
        } else {
            printf("– | – | – | – |\n");
        }
    }
    return 0;
}
