// Polls (BBB's quick polls): the presenter starts one (Yes/No, True/False, A–D, custom
// answers, free text; optionally anonymous), everyone answers once, the presenter sees
// the results live and publishes them (they go to the chat too).

import { $, el, show } from "./util.js";
import { t } from "./i18n.js";
import { act } from "./socket.js";
import { addHandlers } from "./protocol.js";
import { isPresenter } from "./presentation.js";

export const polls = { poll: null, results: null, answered: false };

// The poll types and their buttons' names ("A–D" reads the same in every language).
function pollTypes() {
  return [
    ["YN", t("poll.yesNo")], ["TF", t("poll.trueFalse")], ["A-D", "A–D"],
    ["CUSTOM", t("poll.custom")], ["R-", t("poll.freeText")],
  ];
}

// The server names the answers of Yes/No and True/False polls in English (that is what
// goes to the chat and the recordings); each page shows them in its own language.
function answerLabel(poll, label) {
  if (poll?.pollType === "YN") return { Yes: t("poll.yes"), No: t("poll.no") }[label] ?? label;
  if (poll?.pollType === "TF") return { True: t("poll.true"), False: t("poll.false") }[label] ?? label;
  return label;
}

function startPoll(pollType) {
  const data = {
    pollType,
    question: $("poll-question").value.trim(),
    anonymous: $("poll-anonymous").checked,
  };
  if (pollType === "CUSTOM") {
    data.answers = $("poll-answers").value.split("\n").map((a) => a.trim()).filter(Boolean);
  }
  act("pollStart", data, t("act.pollStart")).then(() => {
    $("poll-form").hidden = true;
    $("poll-start").setAttribute("aria-expanded", "false");
  }, () => {});
}

function answer(value) {
  const poll = polls.poll;
  if (!poll) return;
  act("pollAnswer", { pollId: poll.id, answer: value }, t("act.pollAnswer")).then(() => {
    polls.answered = true;
    renderPolls();
  }, (err) => {
    if (err.code === "alreadyAnswered") {
      polls.answered = true;
      renderPolls();
    }
  });
}

function renderResults(box, results) {
  box.replaceChildren();
  if (!results) return;
  box.append(el("p", { class: "poll-count", text: results.responders === 1 ? t("poll.oneAnswer") : t("poll.answers", { count: results.responders }) }));
  if (results.pollType === "R-") {
    const list = el("ul", { class: "poll-texts" });
    for (const text of results.texts ?? []) list.append(el("li", { text }));
    box.append(list);
    return;
  }
  const total = (results.counts ?? []).reduce((a, b) => a + b, 0);
  const list = el("ul", { class: "poll-bars" });
  results.answers.forEach((label, index) => {
    const count = results.counts?.[index] ?? 0;
    const percent = total ? Math.round((100 * count) / total) : 0;
    const bar = el("span", { class: "poll-bar" });
    bar.style.width = `${percent}%`;
    list.append(el("li", { dataset: { answer: String(index) } },
      el("span", { class: "poll-label", text: t("poll.result", { answer: answerLabel(results, label), count, percent }) }), bar));
  });
  box.append(list);
}

export function renderPolls() {
  const presenter = isPresenter();
  show($("poll-start"), presenter);
  if (!presenter) $("poll-form").hidden = true;
  const poll = polls.poll;
  const panel = $("poll-panel");
  show(panel, Boolean(poll));
  if (!poll) return;
  $("poll-title").textContent = poll.question || t("poll.title");
  $("poll-anonymous-note").hidden = !poll.anonymous;
  const choices = $("poll-choices");
  choices.replaceChildren();
  const open = !poll.stopped;
  if (open && !polls.answered) {
    if (poll.pollType === "R-") {
      const input = el("input", { id: "poll-text", type: "text", maxlength: "300", "aria-label": t("poll.yourAnswer") });
      const form = el("form", { class: "poll-text-form" }, input,
        el("button", { type: "submit", class: "btn primary", text: t("poll.send") }));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        if (input.value.trim()) answer(input.value.trim());
      });
      choices.append(form);
    } else {
      poll.answers.forEach((label, index) => {
        const shown = answerLabel(poll, label);
        choices.append(el("button", {
          type: "button", class: "btn poll-choice", text: shown,
          "aria-label": t("poll.answer", { answer: shown }), onclick: () => answer(index),
        }));
      });
    }
  } else if (polls.answered && open) {
    choices.append(el("p", { class: "muted", text: t("poll.thanks") }));
  } else if (!open) {
    choices.append(el("p", { class: "muted", text: poll.published ? t("poll.overResults") : t("poll.closed") }));
  }
  const showResults = presenter || poll.published;
  show($("poll-results"), showResults && Boolean(polls.results));
  if (showResults) renderResults($("poll-results"), polls.results);
  show($("poll-stop"), presenter && open);
  show($("poll-publish"), presenter && !poll.published);
}

export function initPolls() {
  const form = $("poll-form");
  $("poll-start").addEventListener("click", () => {
    form.hidden = !form.hidden;
    $("poll-start").setAttribute("aria-expanded", String(!form.hidden));
    if (!form.hidden) $("poll-question").focus();
  });
  const types = $("poll-types");
  for (const [value, label] of pollTypes()) {
    types.append(el("button", { type: "button", class: "btn small", text: label, dataset: { pollType: value },
      onclick: () => startPoll(value) }));
  }
  $("poll-stop").addEventListener("click", () => act("pollStop", {}, t("act.pollStop")).catch(() => {}));
  $("poll-publish").addEventListener("click", () => act("pollPublish", {}, t("act.pollPublish")).catch(() => {}));

  addHandlers({
    joined(message) {
      const p = message.data?.presentation ?? {};
      polls.poll = p.poll ?? null;
      polls.answered = Boolean(p.poll?.answered);
      polls.results = p.pollResults ?? null;
      renderPolls();
    },
    pollStarted(message) {
      polls.poll = message.data;
      polls.answered = false;
      polls.results = null;
      renderPolls();
    },
    pollResults(message) {
      if (polls.poll && message.data?.id === polls.poll.id) {
        polls.results = message.data;
        renderPolls();
      }
    },
    pollStopped(message) {
      if (polls.poll && message.data?.id === polls.poll.id) {
        polls.poll = { ...polls.poll, stopped: true };
        renderPolls();
      }
    },
    pollPublished(message) {
      if (polls.poll && message.data?.id === polls.poll.id) {
        polls.poll = { ...polls.poll, stopped: true, published: true };
        polls.results = message.data;
        renderPolls();
      }
    },
    participantUpdated() {
      renderPolls();
    },
  });
}
