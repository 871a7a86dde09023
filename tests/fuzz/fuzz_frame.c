/* fuzz_frame.c - libFuzzer target: the frame header decoder.
 *
 * The first byte picks the body limit (from tiny to the default 16 MiB);
 * the rest is decoded as a stream of frames, the way conn_parse and the
 * client consume their plaintext buffers, checking the decoder's promises:
 * a frame never claims bytes it was not given, the body lies inside the
 * input, and an oversized length is refused before its body arrives.
 */
#include "err.h"
#include "frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t limits[] = {0, 1, 8, 64, 1024, 65536, 16u << 20};
    size_t max_body, pos = 0;
    int frames = 0;

    if (size < 1)
        return 0;
    max_body = limits[data[0] % (sizeof(limits) / sizeof(limits[0]))];
    data++;
    size--;
    while (pos < size && frames < 100000) {
        ps_frame_t f;
        size_t used = 0;
        int rc = ps_frame_decode(data + pos, size - pos, max_body, &f, &used);
        if (rc == PS_FRAME_NEED_MORE) {
            /* Every prefix of a frame that needs more must also need more. */
            for (size_t k = 0; k < size - pos && k < 16; k++) {
                size_t u2 = 0;
                ps_frame_t f2;
                if (ps_frame_decode(data + pos, k, max_body, &f2, &u2) == PS_OK)
                    abort();
            }
            break;
        }
        if (rc != PS_OK)
            break;
        if (used < PS_FRAME_HDR || used > size - pos || f.body != data + pos + PS_FRAME_HDR ||
            f.body_len != used - PS_FRAME_HDR || f.body_len > max_body)
            abort();
        /* Touch the body: ASan catches a body pointer past the input. */
        if (f.body_len) {
            volatile uint8_t x = f.body[0];
            x = f.body[f.body_len - 1];
            (void)x;
        }
        /* Re-encoding the header gives back the same 12 bytes but for the
         * flags and reserved bits, which the decoder passes through. */
        {
            uint8_t hdr[PS_FRAME_HDR];
            ps_frame_encode_header(hdr, f.type, f.flags, f.request_id, f.body_len);
            if (memcmp(hdr, data + pos, 6) != 0 || memcmp(hdr + 8, data + pos + 8, 4) != 0)
                abort();
        }
        (void)ps_frame_type_name(f.type);
        pos += used;
        frames++;
    }
    return 0;
}
