"""`{{ value|amount }}`: a Decimal without trailing zeros and never in exponent notation
(`Decimal.normalize()` alone shows 30000.00000000 as "3E+4")."""

from decimal import Decimal

from django import template

from portal.decimals import decimal_plain

register = template.Library()


@register.filter
def amount(value):
    if value is None or value == "":
        return ""
    if not isinstance(value, Decimal):
        return value
    return decimal_plain(value)
