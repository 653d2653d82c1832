"""The twistd plugin: ``twistd -n meetplatform``."""

from twisted.application.service import ServiceMaker

meetplatform = ServiceMaker(
    "meetplatform",
    "meetplatform.tap",
    "A meeting platform: BigBlueButton API, JSON:API, embeds and signalling.",
    "meetplatform",
)
