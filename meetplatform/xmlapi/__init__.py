"""The legacy BigBlueButton XML API (``/bigbluebutton/api/<call>``)."""

from meetplatform.xmlapi.app import CallContext, XmlApi

__all__ = ["CallContext", "XmlApi"]
