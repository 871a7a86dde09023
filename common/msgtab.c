/* msgtab.c - the message table, made from msgtab.def. */
#include "msgtab.h"
#include "policy.h"
#include "tls.h"

#include "wire.pb-c.h"

#include <stdio.h>

static const ps_msg_info_t g_table[] = {
#define PS_MSG(type, ID, name, desc, reply, dir, hello, run)                                                       \
    {PS_MSG_##ID, name, &desc, PS_MSG_##reply, PS_MSG_DIR_##dir, hello, PS_MSG_RUN_##run},
#include "msgtab.def"
#undef PS_MSG
};

/* Rows are in type order from 1 with no gaps, so a type indexes the table. */
_Static_assert(sizeof(g_table) / sizeof(g_table[0]) == PS_MSG_MAX_KNOWN, "msgtab.def: one row per type");

const ps_msg_info_t *ps_msg_info(uint8_t type)
{
    if (type < 1 || type > PS_MSG_MAX_KNOWN)
        return NULL;
    return &g_table[type - 1];
}

const ps_msg_info_t *ps_msg_table(size_t *n)
{
    *n = sizeof(g_table) / sizeof(g_table[0]);
    return g_table;
}

const char *ps_frame_type_name(uint8_t type)
{
    const ps_msg_info_t *mi = ps_msg_info(type);
    return mi ? mi->name : "unknown";
}

int ps_msg_role_may_send(uint8_t type, int role)
{
    const ps_msg_info_t *mi = ps_msg_info(type);
    if (!mi || mi->dir != PS_MSG_DIR_C2S || role < 0 || role > PS_ROLE_VIEWER)
        return 0;
    return ps_policy_may_send((ps_role_t)role, type);
}

void ps_msg_roles_text(uint8_t type, char *out, size_t cap)
{
    static const ps_role_t order[] = {PS_ROLE_ADMIN, PS_ROLE_TOWNSHIP, PS_ROLE_COLLECTOR, PS_ROLE_VIEWER};
    size_t len = 0, n = 0;
    if (cap)
        out[0] = '\0';
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]) && len < cap; i++) {
        int w;
        if (!ps_msg_role_may_send(type, order[i]))
            continue;
        w = snprintf(out + len, cap - len, "%s%s", n++ ? ", " : "", ps_role_name(order[i]));
        if (w < 0)
            break;
        len += (size_t)w;
    }
    if (n == sizeof(order) / sizeof(order[0]))
        snprintf(out, cap, "any");
    else if (!n)
        snprintf(out, cap, "nobody");
}

const char *ps_msg_dir_text(ps_msg_dir_t dir)
{
    return dir == PS_MSG_DIR_C2S ? "client → server" : "server → client";
}

const char *ps_msg_run_text(ps_msg_run_t run)
{
    switch (run) {
    case PS_MSG_RUN_LOOP: return "loop";
    case PS_MSG_RUN_POOL: return "read pool";
    case PS_MSG_RUN_COMMIT: return "commit";
    default: return "–";
    }
}
