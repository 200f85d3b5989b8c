"""Name parts for synthetic recipients: common Bangladeshi given names and family names."""

MALE_GIVEN = (
    "Abdul", "Abu", "Aminul", "Anisur", "Arif", "Ashraful", "Azizul", "Delwar", "Faruk", "Habibur",
    "Hasan", "Imran", "Jahangir", "Jamal", "Kamal", "Khalid", "Mahbub", "Mamun", "Masud", "Mizanur",
    "Mohammad", "Monir", "Mostafa", "Nazrul", "Rafiq", "Rakib", "Rashed", "Rezaul", "Saiful",
    "Shahid", "Shafiq", "Sohel", "Tanvir", "Tariq", "Zahid", "Ziaur", "Anup", "Bimal", "Dipankar",
    "Gopal", "Prosenjit", "Subrata",
)
FEMALE_GIVEN = (
    "Afroza", "Ayesha", "Farzana", "Fatema", "Hasina", "Jannatul", "Jesmin", "Khadija", "Laila",
    "Mahmuda", "Marium", "Morsheda", "Nasrin", "Nazma", "Nusrat", "Parvin", "Rahima", "Rokeya",
    "Roksana", "Rumana", "Sabina", "Salma", "Shahnaz", "Shamima", "Sharmin", "Sultana", "Taslima",
    "Tahmina", "Umme", "Yasmin", "Anjali", "Bithi", "Dipa", "Mitu", "Puja", "Shapla",
)
FAMILY = (
    "Ahmed", "Akter", "Alam", "Ali", "Begum", "Biswas", "Chowdhury", "Das", "Hossain", "Haque",
    "Islam", "Kabir", "Khan", "Khatun", "Mahmud", "Mia", "Mondal", "Molla", "Paul", "Rahman",
    "Roy", "Saha", "Sarkar", "Sheikh", "Siddique", "Talukder", "Uddin", "Ullah", "Barua", "Sen",
)
CENTER_KINDS = (
    "Upazila Health Complex", "Sadar Hospital", "Medical College Hospital", "Union Health Centre",
    "Ward EPI Centre", "Community Clinic", "Urban Primary Health Care Centre",
)
