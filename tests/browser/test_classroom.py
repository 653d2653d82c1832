"""The classroom in real Chromium: a PDF of create shown to everyone, pages turned by the
presenter, a rectangle drawn and seen, a late joiner, a poll answered."""

from __future__ import annotations

import base64
import urllib.request
from typing import Any

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from tests.browser.conftest import Bbb
from tests.browser.helpers import browser_errors, enter, meeting_id, wait_for
from tests.documents.pdfs import make_pdf

pytestmark = pytest.mark.browser


def create_with_pdf(bbb: Bbb, mid: str, pages: int) -> None:
    """POST create with a <modules> body holding the PDF inline (base64)."""
    content = base64.b64encode(make_pdf(pages)).decode()
    body = (f'<modules><module name="presentation"><document name="lesson.pdf">{content}'
            "</document></module></modules>").encode()
    request = urllib.request.Request(bbb.url("create", meetingID=mid, name="Lesson"),
                                     data=body, method="POST",
                                     headers={"Content-Type": "application/xml"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert b"SUCCESS" in response.read()


def presentation(driver: Any) -> dict[str, Any]:
    result: dict[str, Any] = driver.execute_script("return window.meetplatform.presentation")
    return result


def shown_page(driver: Any) -> tuple[int, str | None, str]:
    """The page number, the slide image's URL and its text alternative."""
    image = driver.find_element(By.ID, "slide-image")
    return (presentation(driver)["page"], image.get_attribute("src"),
            image.get_attribute("alt"))


def slide_loaded(driver: Any, page: int) -> bool:
    return bool(driver.execute_script(
        "const i = document.getElementById('slide-image');"
        "return !i.hidden && i.complete && i.naturalWidth > 0 && "
        "i.getAttribute('src').endsWith('/page-' + arguments[0] + '.png')", page))


def rectangles(driver: Any) -> list[dict[str, Any]]:
    return [s for s in presentation(driver)["shapes"] if s["kind"] == "rectangle"]


def canvas_has_red(driver: Any) -> bool:
    """Whether the whiteboard canvas has drawn (reddish) pixels."""
    return bool(driver.execute_script("""
        const c = document.getElementById('whiteboard');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < d.length; i += 4) {
          if (d[i + 3] > 0 && d[i] > 150 && d[i + 1] < 100) return true;
        }
        return false;"""))


UNNAMED_CONTROLS = """
const named = (el) => {
  if ((el.getAttribute('aria-label') || '').trim()) return true;
  if (el.id && document.querySelector(`label[for="${el.id}"]`)) return true;
  if (el.closest('label')) return true;
  return (el.textContent || '').trim().length > 0;
};
const controls = document.querySelectorAll(
  '#presentation button, #presentation input, #presentation select, #presentation canvas');
return [...controls].filter((el) => !named(el)).map((el) => el.outerHTML.slice(0, 80));
"""


def test_a_lesson_with_slides_a_drawing_and_a_poll(bbb: Bbb, new_browser: Any) -> None:
    mid = meeting_id("class")
    create_with_pdf(bbb, mid, 3)
    teacher, pupil = new_browser(), new_browser()
    enter(teacher, bbb.join_url(mid, "Teacher", "MODERATOR"), audio="join-audio-later")
    enter(pupil, bbb.join_url(mid, "Pupil", "VIEWER"), audio="join-audio-later")

    # page 1 of the PDF, to both, with its text alternative
    for driver in (teacher, pupil):
        wait_for(driver, lambda d: slide_loaded(d, 1), "page 1 of the PDF")
        page, src, alt = shown_page(driver)
        assert page == 1 and src and alt == "lesson.pdf, page 1 of 3"
    assert pupil.find_element(By.ID, "next-page").get_attribute("disabled") is not None
    # every control of the classroom has an accessible name, the slide a description
    assert teacher.execute_script(UNNAMED_CONTROLS) == []
    assert teacher.find_element(By.ID, "slide-view").get_attribute("aria-label") == (
        "lesson.pdf, page 1 of 3")

    # the presenter turns to page 2: the pupil's page changes
    next_button = teacher.find_element(By.CSS_SELECTOR, "button[aria-label='Next page']")
    next_button.click()
    wait_for(pupil, lambda d: slide_loaded(d, 2), "page 2 on the pupil's screen")
    assert shown_page(pupil)[2] == "lesson.pdf, page 2 of 3"
    assert pupil.find_element(By.ID, "page-label").text == "Page 2 of 3"

    # the presenter draws a rectangle: the pupil's canvas has it
    teacher.find_element(By.XPATH, "//button[normalize-space()='Rectangle']").click()
    canvas = teacher.find_element(By.ID, "whiteboard")
    size = canvas.size
    ActionChains(teacher).move_to_element_with_offset(
        canvas, -size["width"] // 4, -size["height"] // 4).click_and_hold().move_by_offset(
        size["width"] // 4, size["height"] // 4).move_by_offset(10, 10).release().perform()
    wait_for(pupil, lambda d: any(r["done"] for r in rectangles(d)), "the rectangle")
    [drawn] = rectangles(pupil)
    [mine] = rectangles(teacher)
    assert drawn["id"] == mine["id"] and drawn["points"][:2] == mine["points"][:2]
    assert drawn["points"][-2:] == mine["points"][-2:]
    wait_for(pupil, canvas_has_red, "red pixels on the pupil's whiteboard")

    # a late joiner lands on page 2 with the rectangle
    late = new_browser()
    enter(late, bbb.join_url(mid, "Late", "VIEWER"), audio="join-audio-later")
    wait_for(late, lambda d: slide_loaded(d, 2), "page 2 for the late joiner")
    assert [r["id"] for r in rectangles(late)] == [mine["id"]]
    wait_for(late, canvas_has_red, "the rectangle on the late joiner's whiteboard")

    # a Yes/No poll: the pupil answers, the teacher sees one vote
    teacher.find_element(By.XPATH, "//button[normalize-space()='Start poll']").click()
    teacher.find_element(By.ID, "poll-question").send_keys("Ready?")
    assert teacher.execute_script(UNNAMED_CONTROLS) == []  # the poll form's too
    teacher.find_element(By.XPATH, "//button[normalize-space()='Yes/No']").click()
    wait_for(pupil, lambda d: d.find_element(By.ID, "poll-panel").is_displayed(), "the poll")
    pupil.find_element(By.CSS_SELECTOR, "button[aria-label='Answer Yes']").click()
    wait_for(pupil, lambda d: presentation(d)["pollAnswered"], "the answer to be taken")
    wait_for(teacher, lambda d: (presentation(d)["pollResults"] or {}).get("counts") == [1, 0],
             "one vote in the teacher's results")
    assert "Yes: 1 (100%)" in teacher.find_element(By.ID, "poll-results").text
    assert not pupil.find_element(By.ID, "poll-results").is_displayed()

    for driver in (teacher, pupil, late):
        assert browser_errors(driver) == []
