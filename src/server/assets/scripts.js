// The scripts a floor manager can pick for a card (the SOPs' 方案A / 方案B), by the comment's
// language, and filling in the viewer's name and the product.

export const SCRIPTS = {
  zh: {
    refund: "{user}您好，非常抱歉给您带来不好的体验。方案A：我们马上安排客服联系您办理全额退款，{product}无需寄回。",
    exchange: "{user}您好，这确实是我们的疏忽。方案B：您可以在直播间任选同等或更高价位的一款，我们立即为您换货，运费全部由我们承担。",
    explain: "{user}您好，感谢您的反馈！我们马上核实{product}的情况，稍后在直播间给您说明。",
    private: "{user}您好，具体问题请私信客服，我们一对一为您处理，感谢理解。",
  },
  en: {
    refund: "{user}, we're so sorry about this. Plan A: our team will contact you now for a full refund, no need to send {product} back.",
    exchange: "{user}, that's on us. Plan B: pick any piece of the same or higher price from the live room and we'll exchange it, shipping paid both ways.",
    explain: "{user}, thank you for telling us! We're checking {product} right now and will explain here on the live.",
    private: "{user}, please message our customer service and we'll sort this out with you one to one. Thank you!",
  },
};

// `template` with the viewer's name and the product of `alert`.
export function fill(template, alert) {
  const user = alert.user.name || alert.user.handle || alert.user.id;
  // As on the server: in English {product} is a whole noun phrase ("the …" / "your item").
  const product = alert.lang === "zh" ? (alert.product || "这款") : (alert.product ? `the ${alert.product}` : "your item");
  // Functions, not strings, as replacements: a viewer named `$'` or `$&` stays a name.
  return template.replaceAll("{user}", () => user).replaceAll("{product}", () => product);
}
