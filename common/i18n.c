/* i18n.c - Chinese text of the reasons (see i18n.h). */
#include "i18n.h"
#include "validate.h"

#include <stdio.h>
#include <string.h>

/* English reason (or its fixed start, when a value follows) -> Chinese,
 * with what to do.  Longer keys first where one starts another. */
static const struct {
    const char *en, *zh;
} reasons[] = {
    {"is required (it may be left empty only in a newborn's first year)", "必填：只有出生一年内的婴儿可以暂不填写"},
    {"is required: left empty it is taken from id_number, so correct id_number first",
     "不填时由身份证号自动填写：请先改正身份证号"},
    {"is required", "必填，不能为空"},
    {"must be 18 characters", "应为 18 位：请核对身份证号是否漏位或多位"},
    {"first 17 characters must be digits", "前 17 位应为数字：请核对"},
    {"check character must be a digit or upper-case X", "末位应为数字或 X"},
    {"check character does not match (GB 11643 MOD 11-2)", "校验位不符（GB 11643）：请逐位核对身份证号"},
    {"birth date inside it is before 1890", "其中的出生日期早于 1890 年：请核对"},
    {"birth date inside it does not exist", "其中的出生日期不存在：请核对第 7-14 位"},
    {"birth date inside it is in the future", "其中的出生日期晚于今天：请核对第 7-14 位"},
    {"must be a date YYYY-MM-DD", "应为日期，如 2024-05-15（也可写 2024/5/15、20240515、2024年5月15日）"},
    {"year must be 1890 or later", "年份应不早于 1890"},
    {"month must be 01 to 12", "月份应为 01 至 12"},
    {"day does not exist in that month", "该月没有这一天：请核对日期"},
    {"is in the future", "晚于今天：请核对日期"},
    {"does not match the birth date in id_number", "与身份证号中的出生日期不符：请核对，或留空由身份证号自动填写"},
    {"does not match the sex digit (17th character) of id_number",
     "与身份证号第 17 位所示性别不符：请核对，或留空由身份证号自动填写"},
    {"is before start_date", "早于流动日期：请核对"},
    {"is before submitted_date", "早于通报日期：请核对"},
    {"requires submitted_date", "需先填写通报日期"},
    {"the other place may set only submitted_date and feedback_date",
     "本地是这条流动人口登记的对方地，只能填写通报日期和反馈日期：其他内容请联系登记地乡镇修改"},
    {"the other place may not delete or restore the record", "本地是这条流动人口登记的对方地，不能删除或恢复这条记录"},
    {"is not a known org unit", "不是已知的单位代码：请用 12 位区划代码（见单位表）"},
    {"is not a known value", "不是可选的值：请查看 popsync fields"},
    {"is not valid UTF-8", "不是有效的 UTF-8 文字：请用 --encoding gbk 导入，或另存为 CSV UTF-8"},
    {"is outside the sender's scope", "超出本机证书的管辖范围：只能录入本单位及下级单位的记录"},
    {"must be YYYY or YYYY-MM", "应为年份或年月，如 2026 或 2026-03"},
    {"must be a 12-digit division code", "应为 12 位区划代码"},
    {"must be a 16-byte record id", "应为记录 ID（UUID）"},
    {"must be a 16-byte UUID", "应为记录 ID（UUID）"},
    {"must be empty unless status is paid", "状态不是“已发放”时应为空"},
    {"must differ from the record's orgunit", "应与本记录的单位不同"},
    {"must not be negative", "不能为负数"},
    {"must be one of ", "应为以下之一："},
    {"must be at most ", "超出上限：不能超过 "},
    {"must be at least ", "不能少于 "},
    {"must be 1 to ", "应为 1 至 "},
    {"refers to a ", "引用的记录不存在："},
    {"this ID number appears on an earlier row of this file", "该身份证号在本文件前面某行已出现：同一人只登记一次，请核对"},
    {"appears on an earlier row of this file", "与本文件前面某行的记录 ID 重复"},
    {"belongs to a deleted record", "对应的记录已删除：可先用 popsync restore 恢复"},
    {"belongs to a record of another kind", "属于另一类记录"},
    {"not a valid record id (UUID)", "不是有效的记录 ID（UUID）"},
    {"value contains a NUL character", "含有空字符"},
    {"contains control characters", "含有控制字符（只允许换行）：请删除"},
    {"has ", "单元格数与表头不符："},
    {"unknown column for kind ", "未知的列：可用的列（英文名或中文名）见 popsync fields；"},
    {"column appears more than once", "该列重复出现"},
    {"neither a record id nor the ID number of a person in this cache: add the person first, or give the record id",
     "既不是记录 ID，也不是本机已登记人员的身份证号：请先登记此人，或填写其记录 ID"},
    {"a column name is not valid UTF-8: column ", "表头有一列的列名不是有效的文字：请在 Excel 中重新输入列名；列号 "},
    {"a column has no name (an empty header cell): column ", "表头有一列没有列名：请填写列名或删除该列（含其下数据）；列号 "},
    {"malformed CSV: a quote inside an unquoted field, or text after a closing quote",
     "CSV 格式错误：没有用引号括起的单元格里有引号，或右引号后还有文字：请在 Excel 中打开改正后另存为 CSV"},
    {"malformed CSV: a quoted field is not closed", "CSV 格式错误：某个单元格的引号没有配对：请在 Excel 中打开改正后另存为 CSV"},
    {"no header row naming the columns (姓名,身份证号,...): popsync template KIND makes one",
     "没有写明各列名称的表头行（如 姓名,身份证号,…）：可用 popsync template 生成模板"},
    {"not a JSON object", "不是 JSON 对象"},
    {"no readable worksheet in the workbook", "工作簿中没有可读的工作表：请在 Excel 中打开后另存为 .xlsx"},
    {"not valid JSON: ", "不是有效的 JSON："},
    {"Excel turned this ID number into a number", "Excel 把身份证号变成了数字：请把该列设为“文本”格式后重新导出"},
    {"Excel saved this date as a number", "Excel 把日期存成了数字：请把该列设为“日期”格式后重新保存"},
    {"amount_fen is in fen", "金额（分）应为整数分：按元填写请用“金额”列，如 3000.00"},
    {"must be an amount in yuan", "金额应为元，最多两位小数，如 3000.00"},
    {"invalid value", "不是可选的值：请查看 popsync fields"},
    /* Why the server kept a conflict (server/merge.c), shown by popsync ui. */
    {"the same field was changed on both sides", "两台设备修改了同一字段：请逐字段选择保留哪一边"},
    {"edited a record that was deleted meanwhile", "修改了一条已被删除的记录：请选择恢复（保留修改）或维持删除"},
    {"deleted a record that was edited meanwhile", "删除了一条已被他人修改的记录：请选择维持删除或保留修改"},
};

/* "is already registered: record ID in unit CODE; WHAT TO DO" (the cache's
 * duplicate check and the server's ID-number index), with its values. */
static int registered_zh(const char *en, char *buf, size_t buflen)
{
    char id[40], unit[16];
    int at = 0;

    if (sscanf(en, "is already registered: record %39[0-9a-f-] in unit %15[0-9];%n", id, unit, &at) != 2 || !at)
        return 0;
    if (strstr(en + at, "--update"))
        snprintf(buf, buflen, "该身份证号已登记：记录 %s（单位 %s）；要修改那条记录请加 --update 或用 popsync edit %s",
                 id, unit, id);
    else
        snprintf(buf, buflen,
                 "该身份证号已登记：记录 %s（单位 %s）；一个人在全区只登记一次：请用 popsync merge 合并两条记录，"
                 "或更正身份证号",
                 id, unit);
    return 1;
}

/* "must be one of a, b or c" (scheme and service codes) -> the choices by
 * their Chinese labels, which is what the clerk types and `popsync fields
 * --lang zh` shows. */
static int one_of_zh(const char *en, char *buf, size_t buflen)
{
    static const char key[] = "must be one of ";
    const char *p = en + sizeof(key) - 1;
    size_t used;

    if (strncmp(en, key, sizeof(key) - 1) != 0)
        return 0;
    used = (size_t)snprintf(buf, buflen, "应为以下之一：");
    while (*p && used < buflen) {
        char code[64];
        const char *end = p + strcspn(p, ", "), *zh;
        snprintf(code, sizeof(code), "%.*s", (int)(end - p), p);
        zh = ps_service_label(code, 1);
        if (!zh)
            zh = ps_scheme_label(code, 1);
        if (*code)
            used += (size_t)snprintf(buf + used, buflen - used, "%s%s", used > strlen("应为以下之一：") ? "、" : "",
                                     zh ? zh : code);
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
        if (strncmp(p, "or ", 3) == 0)
            p += 3;
    }
    return 1;
}

/* "no sheet "X" in this workbook: give --sheet one of "a", "b"" (xlsx.c),
 * with the name typed and the workbook's sheets. */
static int sheet_zh(const char *en, char *buf, size_t buflen)
{
    static const char key[] = "no sheet \"", mid[] = "\" in this workbook: give --sheet one of ";
    const char *name = en + sizeof(key) - 1, *end;

    if (strncmp(en, key, sizeof(key) - 1) != 0 || !(end = strstr(name, mid)))
        return 0;
    snprintf(buf, buflen, "工作簿中没有工作表“%.*s”：--sheet 应为以下之一（名称或序号）：%s", (int)(end - name), name,
             end + sizeof(mid) - 1);
    return 1;
}

const char *ps_i18n_reason(const char *en, char *buf, size_t buflen)
{
    if (!buflen)
        return buf;
    if (en && (registered_zh(en, buf, buflen) || one_of_zh(en, buf, buflen) || sheet_zh(en, buf, buflen)))
        return buf;
    for (size_t i = 0; en && i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        size_t n = strlen(reasons[i].en);
        if (strncmp(en, reasons[i].en, n) != 0)
            continue;
        /* A key ending in a space has a value after it: keep the value. */
        if (reasons[i].en[n - 1] == ' ')
            snprintf(buf, buflen, "%s%s", reasons[i].zh, en + n);
        else if (!en[n] || strncmp(reasons[i].en, "Excel", 5) == 0 || strncmp(reasons[i].en, "amount_fen", 10) == 0 ||
                 strncmp(reasons[i].en, "must be an amount", 17) == 0 || strncmp(reasons[i].en, "invalid value", 13) == 0)
            snprintf(buf, buflen, "%s", reasons[i].zh);
        else
            continue;
        return buf;
    }
    snprintf(buf, buflen, "%s", en ? en : "");
    return buf;
}
