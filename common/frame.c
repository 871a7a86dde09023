/* frame.c - frame header codec. */
#include "frame.h"
#include "err.h"

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int ps_frame_decode(const uint8_t *p, size_t len, size_t max_body, ps_frame_t *out, size_t *consumed)
{
    uint32_t flen;

    if (len < 4)
        return PS_FRAME_NEED_MORE;
    flen = rd32(p);
    if (flen < PS_FRAME_LEN_REST)
        return PS_EPROTO;
    /* Reject before buffering: the caller must not wait for a body it will refuse. */
    if ((size_t)flen - PS_FRAME_LEN_REST > max_body)
        return PS_ETOOBIG;
    if (len < 4 + (size_t)flen)
        return PS_FRAME_NEED_MORE;
    out->type = p[4];
    out->flags = p[5];
    out->reserved = (uint16_t)(p[6] << 8 | p[7]);
    out->request_id = rd32(p + 8);
    out->body = p + PS_FRAME_HDR;
    out->body_len = (size_t)flen - PS_FRAME_LEN_REST;
    *consumed = 4 + (size_t)flen;
    return PS_OK;
}

void ps_frame_encode_header(uint8_t hdr[PS_FRAME_HDR], uint8_t type, uint8_t flags, uint32_t request_id,
                            size_t body_len)
{
    wr32(hdr, (uint32_t)(body_len + PS_FRAME_LEN_REST));
    hdr[4] = type;
    hdr[5] = flags;
    hdr[6] = 0;
    hdr[7] = 0;
    wr32(hdr + 8, request_id);
}
