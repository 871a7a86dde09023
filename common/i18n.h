/* i18n.h - what popsync tells a clerk, in Chinese.
 *
 * Owns: the Chinese text of the reasons validation, the readers and the
 * field dictionary give (they are written in English, the language of
 * logs and tests), each with what to do about it.  The CLI (and the web
 * interface) call ps_i18n_reason when the user's language is Chinese.  Pure;
 * any thread.
 */
#ifndef PS_I18N_H
#define PS_I18N_H

#include <stddef.h>

/**
 * The reason en in Chinese into buf (always NUL-terminated): a known reason
 * by its English text, with any variable tail (a list of values, a number)
 * kept as it is.  A reason with no translation is copied unchanged.
 * Returns buf.
 */
const char *ps_i18n_reason(const char *en, char *buf, size_t buflen);

#endif
