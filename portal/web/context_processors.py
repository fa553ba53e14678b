"""Navigation of the base layout: each page registers here once, later issues add theirs."""

from django.urls import reverse

from portal.choices import Role

#: (label, url name, weakest role that sees it)
NAVIGATION = [
    ("Home", "portal:home", Role.VIEWER),
    ("Dashboard", "portal:dashboard", Role.VIEWER),
    ("Markets", "portal:markets", Role.VIEWER),
    ("Trade", "portal:trade", Role.VIEWER),
    ("Orders", "portal:orders", Role.VIEWER),
    ("Risk", "portal:risk", Role.VIEWER),
    ("Reports", "portal:reports", Role.VIEWER),
    ("Strategies", "portal:strategies", Role.VIEWER),
    ("API keys", "portal:api-keys", Role.VIEWER),
    ("System", "portal:system", Role.OPERATOR),
]


def navigation(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"navigation": []}
    items = [
        {"label": label, "url": reverse(name), "active": request.path == reverse(name)}
        for label, name, role in NAVIGATION
        if user.has_role_at_least(role)
    ]
    return {"navigation": items, "is_operator": user.has_role_at_least(Role.OPERATOR)}
