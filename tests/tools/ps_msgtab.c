/* ps_msgtab.c - prints the message table (common/msgtab.def) as the
 * markdown table of docs/protocol.md §5.
 *
 * usage: ps_msgtab
 *
 * tests/tools/check_msgtab_doc.sh compares its output with the table in
 * docs/protocol.md (ctest docs.msgtab) and, with --update, writes it there.
 */
#include "msgtab.h"
#include "tls.h"

#include <protobuf-c/protobuf-c.h>

#include <stdio.h>
#include <string.h>

/* "any", or the roles that may send type as the access policy says, in
 * this order: "admin, township, collector". */
static void roles_text(uint8_t type, char *out, size_t cap)
{
    static const ps_role_t order[] = {PS_ROLE_ADMIN, PS_ROLE_TOWNSHIP, PS_ROLE_COLLECTOR, PS_ROLE_VIEWER};
    size_t len = 0, n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (!ps_msg_role_may_send(type, order[i]))
            continue;
        len += (size_t)snprintf(out + len, cap - len, "%s%s", n ? ", " : "", ps_role_name(order[i]));
        n++;
    }
    if (n == sizeof(order) / sizeof(order[0]))
        snprintf(out, cap, "any");
}

int main(void)
{
    size_t n;
    const ps_msg_info_t *t = ps_msg_table(&n);

    printf("| type | name | direction | body message | reply | roles that may send it | Hello first | runs on |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < n; i++) {
        const ps_msg_info_t *r = &t[i];
        printf("| %u | %s | %s | `%s` | ", r->type, r->name, ps_msg_dir_text(r->dir), r->desc->short_name);
        if (r->dir == PS_MSG_DIR_C2S) {
            char roles[64];
            roles_text(r->type, roles, sizeof(roles));
            printf("%s (%u) | %s | %s | %s |\n", ps_frame_type_name(r->reply), r->reply, roles,
                   r->needs_hello ? "yes" : "no", ps_msg_run_text(r->run));
        } else {
            printf("– | – | – | – |\n");
        }
    }
    return 0;
}
