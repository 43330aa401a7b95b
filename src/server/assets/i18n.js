// The console page's own words in zh and en (buttons, headings, hints, durations). The
// daemon's words (topics, classes, statuses, actions) come from its vocabulary: vocab.js.

import { state } from "./state.js";

const I18N = {
  zh: {
    console: "场控台", complaints5: "投诉 (5分钟)", attacks5: "攻击 (5分钟)", brigades5: "刷屏团伙 (5分钟)",
    allRooms: "全部直播间", allClasses: "全部类别", allTopics: "全部话题", operator: "场控名",
    // Script choices (the SOPs' 方案A / 方案B)
    suggested: "建议话术", refund: "方案A 退款", exchange: "方案B 换货", explain: "解释说明", private: "引导私聊",
    overdue: "已超时", left: "剩余", backlog: "历史消息", retracted: "平台已删除", users: "位用户",
    rulesBroken: "规则更新失败，仍在使用上一版规则：", copied: "话术已复制", lang: "EN", by: "操作", other: "其他",
    // Tickets
    respondIn: "首次回应剩余", respondLate: "首次回应已超时", resolveIn: "解决剩余", resolveLate: "解决已超时",
    resolvedAfter: "用时", resolveLabel: "结案：", r_refund: "方案A 退款", r_exchange: "方案B 换货", r_other: "其他",
    followups: "买家追问 {n} 次", overdueTickets: "超时工单", overdueOnly: "只显示超时工单。再次点击“超时工单”显示全部。",
    remindNearing: "提醒：{user} 的「{topic}」投诉，{due}即将到期（{time} 前）",
    remindOverdue: "提醒：{user} 的「{topic}」投诉，{due}已超时（应于 {time} 前）",
    close: "关闭",
    // Insights
    tabFeed: "告警", tabInsights: "数据", range24h: "近24小时", range7d: "近7天", refresh: "刷新",
    loading: "加载中…", updatedAt: "更新于 {time}", statsError: "数据暂不可用：{err}",
    empty: "这段时间没有投诉或攻击，一切平静。", emptyChart: "这段时间没有数据。", emptyResponse: "这段时间还没有首次回应。",
    chartTopics: "每小时投诉（按话题）", chartResponse: "每小时首次回应用时（中位数 / 90分位）",
    ticketsTitle: "工单状态", promisesTitle: "承诺兑现", byProduct: "投诉商品", byRoom: "投诉直播间",
    attacksTitle: "攻击（按话题）", rulesTitle: "规则误报率", tComplaints: "投诉", tAttacks: "攻击",
    tOpened: "新工单", tRespMedian: "回应中位数", tBreaches: "超时次数", key: "名称", n: "数量",
    median: "中位数", p90: "90分位", breaches: "超时", promise: "承诺 {d}", promiseOff: "承诺 {d}（超出图表范围）",
    response: "首次回应", resolution: "解决", rule: "规则", fired: "触发", dismissedN: "误报", fpRate: "误报率",
    brigades: "刷屏团伙 {n} 个，涉及 {u} 位用户", scopeAll: "全部直播间", scopeRoom: "直播间 {room}",
    status: "状态", moreRules: "另有 {n} 条规则（误报率更低）",
    // Worklist, steady feed, copy, health
    tabTickets: "工单", prev: "上一页", next: "下一页",
    workCounts: "待回应 {open} · 处理中 {responding} · 已超时 {overdue}",
    workPage: "第 {from}–{to} 条，共 {total} 条", workEmpty: "没有等待处理的工单。", workEmptyOverdue: "目前没有超时工单。",
    pillNew: "{n} 条新告警 ↑", keys: "快捷键：j / k 下一条 / 上一条待回应投诉 · n 最紧急的工单",
    copySelect: "话术已选中，请按 Ctrl+C（Mac 上 ⌘C）复制",
    blindDisconnected: "看不到评论：数据源 {source} 已断开 {for}（{time} 起）",
    blindSilent: "看不到评论：数据源 {source} 已连接，但 {for} 没有任何消息（{time} 起）",
    blindStore: "告警数据库无法写入（{time} 起，正在重试）：{err}",
    u_s: "{n}秒", u_m: "{n}分钟", u_hm: "{h}小时{m}分", u_dh: "{d}天{h}小时",
  },
  en: {
    console: "floor console", complaints5: "complaints (5 min)", attacks5: "attacks (5 min)", brigades5: "brigades (5 min)",
    allRooms: "all rooms", allClasses: "all classes", allTopics: "all topics", operator: "your name",
    // Script choices (the SOPs' 方案A / 方案B)
    suggested: "suggested", refund: "Plan A refund", exchange: "Plan B exchange", explain: "explanation",
    private: "private resolution",
    overdue: "overdue", left: "left", backlog: "backlog", retracted: "deleted by platform", users: "users",
    rulesBroken: "Rules reload failed; still running the last good rules:", copied: "script copied", lang: "中文",
    by: "by", other: "other",
    // Tickets
    respondIn: "respond within", respondLate: "response overdue by", resolveIn: "resolve within", resolveLate: "resolution overdue by",
    resolvedAfter: "after", resolveLabel: "Resolve:", r_refund: "Refund (方案A)", r_exchange: "Exchange (方案B)", r_other: "Other",
    followups: "buyer followed up {n}×", overdueTickets: "overdue tickets",
    overdueOnly: "Showing overdue tickets only. Click “overdue tickets” again to show everything.",
    remindNearing: "Reminder: {user}'s {topic} complaint: the {due} is due soon (by {time})",
    remindOverdue: "Reminder: {user}'s {topic} complaint: the {due} is overdue (was due {time})",
    close: "Close",
    // Insights
    tabFeed: "Alerts", tabInsights: "Insights", range24h: "last 24 h", range7d: "last 7 days", refresh: "Refresh",
    loading: "loading…", updatedAt: "updated {time}", statsError: "Insights unavailable: {err}",
    empty: "No complaints or attacks in this period: a quiet stream.", emptyChart: "No data in this period.",
    emptyResponse: "No first responses in this period yet.",
    chartTopics: "Complaints per hour, by topic", chartResponse: "Time to first response per hour (median / p90)",
    ticketsTitle: "Tickets", promisesTitle: "Promises kept", byProduct: "Complaints by product", byRoom: "Complaints by room",
    attacksTitle: "Attacks by topic", rulesTitle: "Rules by false-positive rate", tComplaints: "complaints", tAttacks: "attacks",
    tOpened: "tickets opened", tRespMedian: "median response", tBreaches: "deadlines missed", key: "name", n: "count",
    median: "median", p90: "p90", breaches: "missed", promise: "promise {d}", promiseOff: "promise {d} (off the scale)",
    response: "first response", resolution: "resolution", rule: "rule", fired: "fired", dismissedN: "dismissed", fpRate: "FP rate",
    brigades: "{n} brigades, {u} users involved", scopeAll: "all rooms", scopeRoom: "room {room}",
    status: "status", moreRules: "{n} more rules (lower false-positive rates)",
    // Worklist, steady feed, copy, health
    tabTickets: "Tickets", prev: "Previous", next: "Next",
    workCounts: "{open} open · {responding} responding · {overdue} overdue",
    workPage: "{from}–{to} of {total}", workEmpty: "No ticket is waiting for an answer.", workEmptyOverdue: "No ticket is overdue right now.",
    pillNew: "{n} new ↑", keys: "Keys: j / k next / previous open complaint · n most urgent ticket",
    copySelect: "Script selected: press Ctrl+C (⌘C on a Mac) to copy",
    blindDisconnected: "Blind: source {source} disconnected for {for} (since {time})",
    blindSilent: "Blind: source {source} connected but silent for {for} (since {time})",
    blindStore: "The alert database cannot commit (since {time}, retrying): {err}",
    u_s: "{n}s", u_m: "{n}m", u_hm: "{h}h {m}m", u_dh: "{d}d {h}h",
  },
};

export const t = (key) => (I18N[state.lang] && I18N[state.lang][key]) || key;
export const tf = (key, vars) => t(key).replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));

// A duration in the largest sensible units, in the console's language: 45s, 7m, 2h 05m, 3d 4h
// (45秒, 7分钟, 2小时05分, 3天4小时).
export function dur(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  const s = Math.round(ms / 1000);
  if (s < 60) return tf("u_s", { n: s });
  if (s < 3600) return tf("u_m", { n: Math.round(s / 60) });
  if (s < 48 * 3600) return tf("u_hm", { h: Math.floor(s / 3600), m: String(Math.floor((s % 3600) / 60)).padStart(2, "0") });
  return tf("u_dh", { d: Math.floor(s / 86400), h: Math.floor((s % 86400) / 3600) });
}
